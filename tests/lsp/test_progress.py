"""Work-done progress per run, and cancelling a run from the editor: through its progress (the
cancel button) or with $/cancelRequest on the command. Either way the run ends at once, long before
the model's answer would have, and the tokens it spent stay on the ledger (how soon it ends is
measured by tests/benchmarks/bench_lsp.py, not asserted here).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, default_capabilities, execute, lsp_range, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

# A reply that streams for ten seconds unless the run is cancelled.
SLOW_SECONDS = 10.0
SLOW = Text(" ".join(f"word{i}" for i in range(200)), chunk_delay=SLOW_SECONDS / 200)


def delegate_params(uri: str, agent: str = "review") -> types.ExecuteCommandParams:
    arguments: dict[str, Any] = {"agent": agent, "uri": uri, "range": lsp_range((0, 0), (5, 0))}
    return types.ExecuteCommandParams(command="agentls.delegate", arguments=[arguments])


def progress_values(client: LanguageClient) -> list[Any]:
    assert len(client.progress_reports) == 1, "one progress per run"
    return next(iter(client.progress_reports.values()))


async def test_a_run_reports_turn_tokens_and_tool_through_progress(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(ToolCall("read_file", {"path": "src/app.py"}), Text("total() ignores rounding."))

    result = await execute(
        client, "agentls.delegate", {"agent": "research", "goal": "find rounding bugs", "uri": uri}
    )

    assert result["status"] == "finished"
    begin, *reports, end = progress_values(client)
    assert isinstance(begin, types.WorkDoneProgressBegin)
    assert begin.title == "research: find rounding bugs"
    assert begin.cancellable is True
    messages = [r.message for r in reports]
    assert all(isinstance(r, types.WorkDoneProgressReport) for r in reports)
    assert messages[0].startswith("turn 1 · ") and messages[0].endswith(" tokens")
    assert any(m.startswith("turn 1 · ") and "read_file(path='src/app.py')" in m for m in messages)
    assert messages[-1].startswith("turn 2 · ")
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert end.message == f"finished · {result['usage']['total']:,} tokens"


@pytest.mark.parametrize(
    "capabilities",
    [
        types.ClientCapabilities(
            workspace=default_capabilities().workspace,
            window=types.WindowClientCapabilities(work_done_progress=False),
        )
    ],
)
async def test_a_client_without_progress_support_still_runs(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    capabilities: types.ClientCapabilities,
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("fine"))

    result = await client.workspace_execute_command_async(delegate_params(uri))

    assert result["status"] == "finished"
    assert client.progress_reports == {}


async def spending_run(editor: Editor) -> str:
    """Wait until a run has streamed some output (so it has spent tokens); returns its id."""
    outputs = await editor.wait_until(lambda: editor.outputs)
    return str(outputs[0]["runId"])


def assert_cut_short(editor: Editor, run_id: str) -> None:
    """The run stopped streaming mid-answer: the editor got only part of it."""
    words = len(editor.output_text(run_id).split())
    assert 0 < words < len(SLOW.content.split()), f"{words} words of the answer streamed"


async def assert_cancelled_with_tokens_recorded(
    client: LanguageClient, editor: Editor, run_id: str
) -> None:
    (closing,) = [e for e in editor.run_events(run_id) if e["kind"] == "cancelled"]
    assert closing["status"] == "cancelled"
    spent = closing["usage"]["total"]
    assert spent > 0, "the streamed tokens were spent and must be recorded"
    assert closing["usage"]["estimated"] is True
    budget = await execute(client, "agentls.budget")
    assert budget["used"] == spent
    assert budget["reserved"] == 0
    audit = await execute(client, "agentls.audit", {"runId": run_id})
    assert audit[-1]["kind"] == "cancelled"
    assert audit[-1]["usage"]["total"] == spent


async def test_cancelling_the_progress_stops_the_run_mid_answer(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(SLOW)
    command = asyncio.ensure_future(client.workspace_execute_command_async(delegate_params(uri)))
    run_id = await spending_run(editor)
    (token,) = client.progress_reports

    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(command, SLOW_SECONDS / 2)

    assert result["status"] == "cancelled"
    assert result["runId"] == run_id
    assert_cut_short(editor, run_id)
    assert result["usage"]["total"] > 0
    end = progress_values(client)[-1]
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert end.message is not None and end.message.startswith("cancelled · ")
    await assert_cancelled_with_tokens_recorded(client, editor, run_id)


async def test_cancel_request_on_the_command_stops_the_run_mid_answer(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(SLOW)
    command = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND, delegate_params(uri), msg_id="delegate-1"
        )
    )
    run_id = await spending_run(editor)

    client.cancel_request(types.CancelParams(id="delegate-1"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(command, SLOW_SECONDS / 2)
    await editor.wait_until(lambda: "cancelled" in editor.kinds(run_id), timeout=SLOW_SECONDS / 2)

    assert_cut_short(editor, run_id)
    assert (await execute(client, "agentls.cancel"))["cancelled"] == [], "nothing left running"
    await assert_cancelled_with_tokens_recorded(client, editor, run_id)


async def test_the_cancel_command_cancels_a_run_in_flight(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(SLOW)
    command = asyncio.ensure_future(client.workspace_execute_command_async(delegate_params(uri)))
    run_id = await spending_run(editor)

    assert await execute(client, "agentls.cancel", {"runId": run_id}) == {"cancelled": [run_id]}

    result = await asyncio.wait_for(command, SLOW_SECONDS / 2)
    assert result["status"] == "cancelled"
    await assert_cancelled_with_tokens_recorded(client, editor, run_id)


async def test_a_delegating_run_shows_in_its_progress_what_the_child_agent_does(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    def respond(body: dict[str, Any]) -> Any:
        messages = body["messages"]
        if any(m["role"] == "tool" for m in messages):
            return Text("done")
        user = next(m["content"] for m in messages if m["role"] == "user")
        if "Goal: split the work" in user:  # the orchestrator, in the language server
            task = {"agent": "research", "goal": "look", "file": "src/app.py"}
            return ToolCall("mcp__agentls__delegate", task)
        return ToolCall("read_file", {"path": "src/app.py"})  # research, in the child agentls

    model.responder = respond
    result = await execute(
        client, "agentls.delegate", {"agent": "orchestrator", "goal": "split the work", "uri": uri}
    )

    assert result["status"] == "finished", result.get("error")
    messages = [r.message for r in progress_values(client) if hasattr(r, "message")]
    step = "mcp__agentls__delegate(→ research: calling read_file(path='src/app.py')"
    assert any(step in (m or "") for m in messages), messages
