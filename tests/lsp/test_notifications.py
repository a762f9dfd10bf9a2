"""Server notifications: agentls/event (mirrored as one window/logMessage line each), coalesced
agentls/output that loses nothing, and agentls/budget after every change of the ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, lsp_range, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

# The contract: at most 20 agentls/output notifications per second per run.
MAX_OUTPUTS_PER_SECOND = 20


async def delegate(client: LanguageClient, uri: str, agent: str = "review") -> dict[str, Any]:
    return await execute(
        client, "agentls.delegate", {"agent": agent, "uri": uri, "range": lsp_range((0, 0), (5, 0))}
    )


async def test_every_audit_event_arrives_as_an_agentls_event(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("No bugs found."))

    run = await delegate(client, uri)

    audit = await execute(client, "agentls.audit", {"runId": run["runId"]})
    sent = editor.run_events(run["runId"])
    assert [e["eventId"] for e in sent] == [e["eventId"] for e in audit]
    assert [e["kind"] for e in sent] == ["started", "model_call", "output", "finished"]
    started, model_call, _, finished = sent
    assert started["agent"] == "review"
    assert started["data"]["path"] == "src/app.py"
    assert model_call["data"]["turn"] == 1
    assert model_call["data"]["callUsage"]["outputTokens"] > 0
    assert finished["status"] == "finished"
    assert finished["usage"] == run["usage"]


async def test_a_large_edit_is_redacted_and_every_event_still_arrives_in_order_before_the_result(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "scaffold.yaml").write_text(
        "name: scaffold\ndescription: Creates files\ninstructions: You create files.\n"
        "mode: tools\ntools: [propose_edit]\n"
    )
    secret = "sk-proj-" + "Q7x" * 16
    # About 60 KB of new text: redacted on a worker thread, not on the event loop.
    body = "".join(f"LINE_{i} = {i}\n" for i in range(5000)) + f'KEY = "{secret}"\n'
    model.enqueue(
        ToolCall("propose_edit", {"path": "src/big.py", "old_text": "", "new_text": body}),
        Text("Created src/big.py."),
    )
    uri = open_file(client, workspace / "src" / "app.py")

    run = await execute(
        client, "agentls.delegate", {"agent": "scaffold", "goal": "add big", "uri": uri}
    )

    # Already there when the result is: no waiting.
    sent = editor.run_events(run["runId"])
    audit = await execute(client, "agentls.audit", {"runId": run["runId"]})
    assert [e["eventId"] for e in sent] == [e["eventId"] for e in audit]
    assert sent[-1]["kind"] == "finished"
    (proposed,) = [e for e in sent if e["kind"] == "edit_proposed"]
    new_text = proposed["artifacts"][0]["newText"]
    assert secret not in new_text and "[REDACTED]" in new_text
    assert new_text.startswith("LINE_0 = 0\nLINE_1 = 1\n")


async def test_each_event_is_mirrored_as_one_log_line(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("No bugs found."))

    run = await delegate(client, uri)
    short = run["runId"][:8]
    lines = await editor.wait_until(
        lambda: (
            found
            if len(found := [m.message for m in client.log_messages if f"run={short}" in m.message])
            >= 4
            else None
        )
    )

    assert len(lines) == len(editor.run_events(run["runId"]))
    assert [line.split()[2] for line in lines] == ["started", "model_call", "output", "finished"]
    assert all(line.startswith("[agentls] review ") for line in lines)
    assert f"tokens={run['usage']['total']}" in lines[-1]
    assert "turn=1" in lines[1]


async def test_streamed_output_is_coalesced_and_nothing_is_lost(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    text = "".join(f"line {i}: naïve → ok ✓\n" for i in range(300))
    # 300 pieces, 5 ms apart: a model streaming 200 deltas a second for about 1.5 s.
    model.enqueue(Text(text, chunks=300, chunk_delay=0.005))

    run = await delegate(client, uri, agent="explain")

    assert run["text"] == text
    outputs = [o for o in editor.outputs if o["runId"] == run["runId"]]
    assert "".join(o["delta"] for o in outputs) == text, "every delta arrives, in order"
    assert all(o["agent"] == "explain" for o in outputs)
    assert len(outputs) < 300 / 4, f"{len(outputs)} notifications for 300 deltas"
    times = editor.output_times[-len(outputs) :]
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= MAX_OUTPUTS_PER_SECOND + 1, f"{busiest} outputs in one second"


async def test_a_fast_model_loses_nothing(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    text = "".join(f"{i} " for i in range(3000))
    model.enqueue(Text(text, chunks=3000))

    run = await delegate(client, uri, agent="explain")

    assert editor.output_text(run["runId"]) == text
    assert len([o for o in editor.outputs if o["runId"] == run["runId"]]) < 100


async def test_the_budget_is_sent_after_every_change(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("fine"))

    run = await delegate(client, uri)

    during = list(editor.budgets)
    assert len(during) >= 2, "one snapshot when the call is reserved, one when it is committed"
    assert any(b["reserved"] > 0 for b in during), "the reservation shows while the call runs"
    last = during[-1]
    assert last["used"] == run["usage"]["total"]
    assert last["reserved"] == 0
    assert last["agents"]["review"]["used"] == run["usage"]["total"]

    await execute(client, "agentls.budget", {"action": "set", "limit": 100_000})
    latest = await editor.wait_until(lambda: editor.budgets[-1]["limit"] == 100_000)
    assert latest
    assert editor.budgets[-1]["remaining"] == 100_000 - run["usage"]["total"]

    await execute(client, "agentls.budget", {"action": "set", "limit": 500, "agent": "write-tests"})
    await editor.wait_until(lambda: "write-tests" in editor.budgets[-1]["agents"])
    assert editor.budgets[-1]["agents"]["write-tests"]["limit"] == 500

    await execute(client, "agentls.budget", {"action": "reset"})
    await editor.wait_until(lambda: editor.budgets[-1]["used"] == 0)
