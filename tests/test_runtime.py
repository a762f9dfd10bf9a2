"""AgentRuntime.delegate against the scripted server: the turn loop of each mode, its events, its
failures and cancellation, as an adapter (editor, terminal) would see them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.rig.eventually import aeventually
from tests.rig.runtimes import runtime_over, scripted_model
from tests.rig.scripted_openai import (
    MalformedToolCall,
    ScriptedOpenAI,
    Status,
    Text,
    ToolCall,
)

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.llm_openai import OpenAIChatModel
from agentls.core.registry import AgentRegistry
from agentls.core.runtime import AgentRuntime, RunResult
from agentls.core.target import ProposedEdit, Target, TextRange, apply_edit
from agentls.core.tools.sandbox import SandboxError

MODEL = "scripted-model"
SOURCE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"

EXPLAIN = AgentDefinition(name="explainer", description="Explains", instructions="Explain.")
REWRITE = AgentDefinition(
    name="rewriter", description="Rewrites", instructions="Rewrite.", mode=Mode.EDIT
)
RESEARCH = AgentDefinition(
    name="researcher",
    description="Researches",
    instructions="Research.",
    mode=Mode.TOOLS,
    tools=["read_file", "list_files", "search", "propose_edit"],
    max_turns=6,
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "calc.py").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text("def helper():\n    return 42\n", encoding="utf-8")
    return tmp_path


class Recorder:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def __call__(self, event: RunEvent) -> None:
        self.events.append(event)

    def kinds(self, *, deltas: bool = False) -> list[EventKind]:
        """The steps, without the live-only marks of what a run waits for (and without the
        streamed text unless asked)."""
        return [
            e.kind
            for e in self.events
            if e.kind is not EventKind.WAITING and (deltas or e.kind is not EventKind.OUTPUT_DELTA)
        ]

    def of(self, kind: EventKind) -> list[RunEvent]:
        return [e for e in self.events if e.kind is kind]


@pytest.fixture
async def runtime(server: ScriptedOpenAI, workspace: Path) -> AsyncIterator[AgentRuntime]:
    model = scripted_model(server.url, MODEL, max_retries=1)
    rt = runtime_over(workspace, model, [EXPLAIN, REWRITE, RESEARCH])
    yield rt
    await model.aclose()


@pytest.fixture
def recorder(runtime: AgentRuntime) -> Recorder:
    rec = Recorder()
    runtime.subscribe(rec)
    return rec


def target(workspace: Path, rng: TextRange | None = None) -> Target:
    return Target(path=workspace / "calc.py", range=rng)


# --- answer mode -------------------------------------------------------------------------------


async def test_answer_mode_returns_the_text(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("It adds two numbers."))
    result = await runtime.delegate("explainer", "Explain add", target(workspace))
    assert result.status is RunStatus.FINISHED
    assert result.text == "It adds two numbers."
    assert result.edits == []
    assert result.error is None
    assert result.usage.total > 0
    assert result.agent == "explainer"


async def test_answer_mode_emits_started_model_call_output_finished(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder, workspace: Path
) -> None:
    server.enqueue(Text("It adds two numbers."))
    result = await runtime.delegate("explainer", "Explain add", target(workspace))
    assert recorder.kinds() == [
        EventKind.STARTED,
        EventKind.MODEL_CALL,
        EventKind.OUTPUT,
        EventKind.FINISHED,
    ]
    assert all(e.run_id == result.run_id for e in recorder.events)
    assert all(e.agent == "explainer" and e.goal == "Explain add" for e in recorder.events)


async def test_events_carry_the_usage_so_far(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder, workspace: Path
) -> None:
    server.enqueue(Text("ok", prompt_tokens=100, completion_tokens=7, cached_tokens=40))
    result = await runtime.delegate("explainer", "Explain", target(workspace))
    (call,) = recorder.of(EventKind.MODEL_CALL)
    assert call.data["call_usage"]["input_tokens"] == 100
    assert call.data["call_usage"]["cached_input_tokens"] == 40
    assert call.data["turn"] == 1
    (closing,) = recorder.of(EventKind.FINISHED)
    assert closing.usage == result.usage
    assert closing.usage.total == 107
    assert closing.status is RunStatus.FINISHED
    assert closing.duration_ms is not None


async def test_streamed_deltas_are_events(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder, workspace: Path
) -> None:
    server.enqueue(Text("one two three"))
    await runtime.delegate("explainer", "Explain", target(workspace))
    deltas = recorder.of(EventKind.OUTPUT_DELTA)
    assert "".join(e.data["delta"] for e in deltas) == "one two three"


async def test_the_model_sees_the_goal_and_the_selected_code(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("ok"))
    rng = TextRange.whole_lines(5, 6, SOURCE)
    await runtime.delegate("explainer", "Explain sub", target(workspace, rng))
    messages = server.requests[0]["messages"]
    assert messages[0]["role"] == "system"
    user = messages[-1]["content"]
    assert "Explain sub" in user
    assert "return a - b" in user
    assert "return a + b" not in user


async def test_run_without_a_target_works(server: ScriptedOpenAI, runtime: AgentRuntime) -> None:
    server.enqueue(Text("Hello."))
    result = await runtime.delegate("explainer", "Say hello")
    assert result.status is RunStatus.FINISHED
    assert result.text == "Hello."


async def test_events_are_kept_in_the_audit_store(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("ok"))
    result = await runtime.delegate("explainer", "Explain", target(workspace))
    assert runtime.audit is not None
    kinds = [e.kind for e in runtime.audit.query(run_id=result.run_id)]
    assert kinds[0] is EventKind.STARTED
    assert kinds[-1] is EventKind.FINISHED
    assert EventKind.OUTPUT_DELTA not in kinds


async def test_tokens_are_committed_to_the_budget(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("ok", prompt_tokens=50, completion_tokens=5))
    result = await runtime.delegate("explainer", "Explain", target(workspace))
    assert runtime.budgeter.run_usage(result.run_id).total == 55


async def test_a_per_call_listener_sees_the_run(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("ok"))
    own = Recorder()
    await runtime.delegate("explainer", "Explain", target(workspace), listener=own)
    assert own.kinds()[0] is EventKind.STARTED
    assert own.kinds()[-1] is EventKind.FINISHED


async def test_unsubscribed_listener_hears_nothing_more(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    rec = Recorder()
    unsubscribe = runtime.subscribe(rec)
    unsubscribe()
    server.enqueue(Text("ok"))
    await runtime.delegate("explainer", "Explain", target(workspace))
    assert rec.events == []


async def test_target_outside_the_workspace_is_refused(
    runtime: AgentRuntime, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "x.py"
    elsewhere.write_text("x = 1\n")
    with pytest.raises(SandboxError):
        await runtime.delegate("explainer", "Explain", Target(path=elsewhere))


# --- edit mode ---------------------------------------------------------------------------------


async def test_edit_mode_turns_the_code_block_into_an_edit_of_the_range(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder, workspace: Path
) -> None:
    server.enqueue(Text("Here:\n```python\ndef sub(a, b):\n    return b - a\n```\nDone."))
    rng = TextRange.whole_lines(5, 6, SOURCE)
    result = await runtime.delegate("rewriter", "Swap", target(workspace, rng))
    assert result.status is RunStatus.FINISHED
    (edit,) = result.edits
    assert edit.path == "calc.py"
    assert edit.range == rng
    assert edit.new_text == "def sub(a, b):\n    return b - a\n"
    assert edit.agent == "rewriter"
    assert apply_edit(SOURCE, edit.range, edit.new_text) == SOURCE.replace(
        "return a - b", "return b - a"
    )
    assert len(recorder.of(EventKind.EDIT_PROPOSED)) == 1


async def test_edit_mode_on_a_whole_file_covers_the_whole_file(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    new = SOURCE.replace("a + b", "b + a")
    server.enqueue(Text(f"```python\n{new}```"))
    result = await runtime.delegate("rewriter", "Swap", target(workspace))
    (edit,) = result.edits
    assert apply_edit(SOURCE, edit.range, edit.new_text) == new
    assert edit.range.start.line == 0 and edit.range.start.character == 0


async def test_edit_mode_never_writes_the_file(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("```python\nx = 1\n```"))
    result = await runtime.delegate("rewriter", "Replace", target(workspace))
    assert result.edits
    assert (workspace / "calc.py").read_text() == SOURCE


async def test_edit_mode_answer_without_code_fails_clearly(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("```python\n```"))
    result = await runtime.delegate("rewriter", "Replace", target(workspace))
    assert result.status is RunStatus.FAILED
    assert result.edits == []
    assert result.error


async def test_edit_mode_code_block_that_never_closes_loses_its_fence_line(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("```python\ndef sub(a, b):\n    return b - a"))
    rng = TextRange.whole_lines(5, 6, SOURCE)
    result = await runtime.delegate("rewriter", "Swap", target(workspace, rng))
    (edit,) = result.edits
    assert edit.new_text == "def sub(a, b):\n    return b - a\n"


async def test_edit_mode_answer_cut_off_at_the_token_limit_fails_without_an_edit(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder, workspace: Path
) -> None:
    server.enqueue(Text("```python\ndef sub(a, b):\n    return", finish_reason="length"))
    result = await runtime.delegate("rewriter", "Swap", target(workspace))
    assert result.status is RunStatus.FAILED
    assert result.edits == []
    assert result.error and "limit" in result.error
    assert recorder.of(EventKind.EDIT_PROPOSED) == []


async def test_edit_mode_complete_block_before_the_token_limit_is_kept(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(Text("```python\nx = 1\n```\nAnd then I rambled on and", finish_reason="length"))
    result = await runtime.delegate("rewriter", "Replace", target(workspace))
    assert result.status is RunStatus.FINISHED
    (edit,) = result.edits
    assert edit.new_text == "x = 1\n"


async def test_applied_edits_are_recorded_as_applied(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder, workspace: Path
) -> None:
    server.enqueue(Text("```python\nx = 1\n```"))
    seen: list[list[ProposedEdit]] = []

    async def apply(edits: list[ProposedEdit]) -> list[tuple[bool, str | None]]:
        seen.append(edits)
        return [(True, None) for _ in edits]

    result = await runtime.delegate("rewriter", "Replace", target(workspace), apply=apply)
    assert seen == [result.edits]
    (applied,) = recorder.of(EventKind.EDIT_APPLIED)
    assert applied.artifacts[0]["path"] == "calc.py"
    assert recorder.of(EventKind.EDIT_REJECTED) == []
    assert recorder.kinds()[-1] is EventKind.FINISHED


async def test_rejected_edits_are_recorded_with_the_reason(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder, workspace: Path
) -> None:
    server.enqueue(Text("```python\nx = 1\n```"))

    async def apply(edits: list[ProposedEdit]) -> list[tuple[bool, str | None]]:
        return [(False, "the user declined") for _ in edits]

    await runtime.delegate("rewriter", "Replace", target(workspace), apply=apply)
    (rejected,) = recorder.of(EventKind.EDIT_REJECTED)
    assert rejected.error == "the user declined"
    assert recorder.of(EventKind.EDIT_APPLIED) == []


# --- tools mode --------------------------------------------------------------------------------


async def test_tools_mode_runs_tools_then_answers(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(
        ToolCall("list_files", {"path": "."}),
        ToolCall("search", {"query": "def helper"}),
        ToolCall("read_file", {"path": "pkg/util.py"}),
        Text("helper returns 42 (pkg/util.py:2)."),
    )
    result = await runtime.delegate("researcher", "What does helper return?")
    assert result.status is RunStatus.FINISHED
    assert result.text == "helper returns 42 (pkg/util.py:2)."
    tools = [e.data["tool"] for e in recorder.of(EventKind.TOOL_CALL)]
    assert tools == ["list_files", "search", "read_file"]
    assert not any(e.data["is_error"] for e in recorder.of(EventKind.TOOL_CALL))
    assert [e.data["turn"] for e in recorder.of(EventKind.MODEL_CALL)] == [1, 2, 3, 4]


async def test_tool_results_go_back_to_the_model(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(ToolCall("read_file", {"path": "pkg/util.py"}, id="call_r"), Text("42"))
    await runtime.delegate("researcher", "What does helper return?")
    second = server.requests[1]["messages"]
    assert second[-2]["role"] == "assistant"
    assert second[-2]["tool_calls"][0]["id"] == "call_r"
    assert second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == "call_r"
    assert "return 42" in second[-1]["content"]
    assert {t["function"]["name"] for t in server.requests[0]["tools"]} == set(RESEARCH.tools)


async def test_tools_mode_propose_edit_becomes_an_edit_not_a_write(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    server.enqueue(
        ToolCall(
            "propose_edit",
            {"path": "pkg/util.py", "old_text": "return 42", "new_text": "return 43"},
        ),
        Text("Changed it."),
    )
    result = await runtime.delegate("researcher", "Make helper return 43")
    (edit,) = result.edits
    assert edit.path == "pkg/util.py"
    assert edit.new_text == "return 43"
    assert (workspace / "pkg" / "util.py").read_text() == "def helper():\n    return 42\n"


async def test_tool_error_goes_back_to_the_model_and_the_run_continues(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(
        ToolCall("read_file", {"path": "../secret"}),
        ToolCall("read_file", {"path": "missing.py"}),
        Text("Could not read it."),
    )
    result = await runtime.delegate("researcher", "Read")
    assert result.status is RunStatus.FINISHED
    errors = [e for e in recorder.of(EventKind.TOOL_CALL) if e.data["is_error"]]
    assert len(errors) == 2  # a tool's own error is not an invalid call
    assert "error" in server.requests[1]["messages"][-1]["content"]


async def test_malformed_tool_call_is_answered_once_and_the_run_continues(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(MalformedToolCall("read_file", '{"path": '), Text("Recovered."))
    result = await runtime.delegate("researcher", "Read")
    assert result.status is RunStatus.FINISHED
    assert result.text == "Recovered."
    (call,) = recorder.of(EventKind.TOOL_CALL)
    assert call.data["is_error"] is True
    reply = server.requests[1]["messages"][-1]
    assert reply["role"] == "tool"
    assert reply["content"].startswith("error")


async def test_unknown_tool_is_answered_once_and_the_run_continues(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(ToolCall("delete_everything", {}), Text("Fine."))
    result = await runtime.delegate("researcher", "Read")
    assert result.status is RunStatus.FINISHED
    reply = server.requests[1]["messages"][-1]
    assert "delete_everything" in reply["content"]
    assert "read_file" in reply["content"]  # the tools it may use are named


async def test_second_invalid_tool_call_fails_the_run(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(MalformedToolCall("read_file"), ToolCall("delete_everything", {}), Text("x"))
    result = await runtime.delegate("researcher", "Read")
    assert result.status is RunStatus.FAILED
    assert result.error and "delete_everything" in result.error
    assert len(server.requests) == 2
    assert recorder.kinds()[-1] is EventKind.FAILED
    assert recorder.of(EventKind.FAILED)[0].error == result.error


async def test_max_turns_exhaustion_fails_clearly(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    agent = RESEARCH.model_copy(update={"max_turns": 3})
    server.responder = lambda body: ToolCall("list_files", {})
    result = await runtime.delegate(agent, "Loop forever")
    assert result.status is RunStatus.FAILED
    assert result.error and "max_turns" in result.error
    assert len(server.requests) == 3


async def test_last_turn_offers_no_tools(server: ScriptedOpenAI, runtime: AgentRuntime) -> None:
    agent = RESEARCH.model_copy(update={"max_turns": 2})
    server.enqueue(ToolCall("list_files", {}), Text("Answer."))
    result = await runtime.delegate(agent, "List")
    assert result.status is RunStatus.FINISHED
    assert "tools" in server.requests[0]
    assert "tools" not in server.requests[1]


async def test_answer_agent_is_offered_no_tools(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(Text("ok"))
    await runtime.delegate("explainer", "Explain")
    assert "tools" not in server.requests[0]


# --- failures and cancellation -----------------------------------------------------------------


async def test_model_error_fails_the_run_with_its_sentence(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(Status(500, retry_after=0.01), Status(500, retry_after=0.01))
    result = await runtime.delegate("explainer", "Explain")
    assert result.status is RunStatus.FAILED
    assert result.error and "500" in result.error and "\n" not in result.error
    assert recorder.kinds() == [EventKind.STARTED, EventKind.FAILED]
    assert recorder.of(EventKind.FAILED)[0].error == result.error


async def test_model_factory_error_fails_the_run(server: ScriptedOpenAI, workspace: Path) -> None:
    from agentls.core.llm import ModelConfigError

    def no_model(name: str | None) -> OpenAIChatModel:
        raise ModelConfigError("No model is configured.")

    rt = AgentRuntime(workspace, AgentRegistry(), no_model, TokenBudgeter(None), AuditStore(None))
    result = await rt.delegate(EXPLAIN, "Explain")
    assert result.status is RunStatus.FAILED
    assert result.error == "No model is configured."


async def test_budget_too_small_stops_before_the_call(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    result = await runtime.delegate("explainer", "Explain", budget=10)
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert server.requests == []
    assert recorder.kinds()[-1] is EventKind.BUDGET_EXCEEDED
    assert result.usage.total == 0


async def cancel_when_streaming(runtime: AgentRuntime, recorder: Recorder) -> str:
    for _ in range(500):
        deltas = recorder.of(EventKind.OUTPUT_DELTA)
        if deltas:
            return deltas[0].run_id
        await asyncio.sleep(0.01)
    raise AssertionError("no output arrived")


async def test_cancel_mid_stream_ends_the_run_cancelled(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    # The stream would take 100 s: a run that ends cancelled was ended by the cancel.
    server.enqueue(Text("word " * 2000, chunk_delay=0.05))
    task = asyncio.create_task(runtime.delegate("explainer", "Explain slowly"))
    run_id = await cancel_when_streaming(runtime, recorder)
    assert runtime.cancel(run_id) == [run_id]
    result: RunResult = await asyncio.wait_for(task, 30)
    assert result.status is RunStatus.CANCELLED
    assert result.error
    assert recorder.kinds()[-1] is EventKind.CANCELLED
    assert runtime.active_runs == []


async def test_cancelled_run_records_the_tokens_it_spent(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(Text("word " * 2000, chunk_delay=0.05))
    task = asyncio.create_task(runtime.delegate("explainer", "Explain slowly"))
    run_id = await cancel_when_streaming(runtime, recorder)
    runtime.cancel(run_id)
    result = await asyncio.wait_for(task, 30)
    assert result.usage.total > 0
    assert result.usage.estimated
    assert recorder.of(EventKind.CANCELLED)[0].usage == result.usage
    assert runtime.budgeter.run_usage(run_id).total == result.usage.total


async def test_a_run_whose_end_is_recorded_is_over_for_cancel(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    # Between its closing event and that event's commit the run's task still lives: a cancel then
    # ("Cancel Run…", agentls.cancel) reports nothing in flight and leaves the run finished.
    model = scripted_model(server.url, MODEL)
    runtime = runtime_over(workspace, model, [EXPLAIN], on_disk=True)
    loop = asyncio.get_running_loop()
    seen: list[tuple[list[str], bool]] = []

    def on_event(event: RunEvent) -> None:
        if event.kind is EventKind.FINISHED:
            loop.call_soon(
                lambda: seen.append((runtime.cancel(), event.run_id in runtime.active_runs))
            )

    runtime.subscribe(on_event)
    server.enqueue(Text("It adds two numbers."))
    try:
        result = await runtime.delegate("explainer", "Explain add", target(workspace))
    finally:
        await runtime.aclose()
        await model.aclose()
    assert seen == [([], True)]  # asked while the run was still tracked
    assert result.status is RunStatus.FINISHED


async def test_cancel_all_cancels_every_run(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.responder = lambda body: Text("word " * 2000, chunk_delay=0.05)
    tasks = [asyncio.create_task(runtime.delegate("explainer", f"Goal {i}")) for i in range(3)]
    await aeventually(
        lambda: len({e.run_id for e in recorder.of(EventKind.OUTPUT_DELTA)}) >= 3,
        "three runs streaming",
    )
    assert len(runtime.cancel()) == 3
    results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert {r.status for r in results} == {RunStatus.CANCELLED}


async def test_cancelling_the_callers_task_cancels_the_run(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(Text("word " * 200, chunk_delay=0.05))
    task = asyncio.create_task(runtime.delegate("explainer", "Explain slowly"))
    await cancel_when_streaming(runtime, recorder)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.kinds()[-1] is EventKind.CANCELLED


async def test_cancel_of_an_unknown_run_cancels_nothing(runtime: AgentRuntime) -> None:
    assert runtime.cancel("no-such-run") == []


async def test_given_run_id_is_used(server: ScriptedOpenAI, runtime: AgentRuntime) -> None:
    server.enqueue(Text("ok"))
    result = await runtime.delegate("explainer", "Explain", run_id="my-run")
    assert result.run_id == "my-run"


async def test_a_run_cancelled_before_it_started_ends_cancelled_without_a_model_call(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    runtime.cancel_when_started("early")
    result = await runtime.delegate("explainer", "Explain", run_id="early")
    assert result.status is RunStatus.CANCELLED
    assert server.requests == []
    assert recorder.kinds() == [EventKind.STARTED, EventKind.CANCELLED]


async def test_the_tool_being_called_is_announced_before_it_runs_but_not_stored(
    server: ScriptedOpenAI, runtime: AgentRuntime, recorder: Recorder
) -> None:
    server.enqueue(ToolCall("read_file", {"path": "pkg/util.py"}), Text("42"))
    result = await runtime.delegate("researcher", "What does helper return?")
    kinds = recorder.kinds()
    assert kinds.index(EventKind.TOOL_STARTED) < kinds.index(EventKind.TOOL_CALL)
    (announced,) = recorder.of(EventKind.TOOL_STARTED)
    assert announced.data["tool"] == "read_file"
    assert "pkg/util.py" in announced.data["arguments"]
    assert runtime.audit is not None
    stored = {e.kind for e in runtime.audit.query(run_id=result.run_id)}
    assert EventKind.TOOL_CALL in stored
    assert EventKind.TOOL_STARTED not in stored


async def test_tools_read_the_editors_unsaved_text_over_the_disk(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    unsaved = "def helper():\n    return 99  # not saved yet\n"
    util = (workspace / "pkg" / "util.py").resolve()
    runtime.sandbox.overlay = lambda path: unsaved if path == util else None
    server.enqueue(
        ToolCall("read_file", {"path": "pkg/util.py"}),
        ToolCall("propose_edit", {"path": "pkg/util.py", "old_text": "99", "new_text": "100"}),
        Text("done"),
    )
    result = await runtime.delegate("researcher", "Bump helper")
    tool_result = server.requests[1]["messages"][-1]["content"]
    assert "return 99  # not saved yet" in tool_result
    (edit,) = result.edits
    assert (edit.range.start.line, edit.range.start.character) == (1, 11)
