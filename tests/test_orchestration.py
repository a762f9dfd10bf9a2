"""Meta-orchestration: the orchestrator agent delegates to child agentls processes over MCP.

Real child processes (`agentls mcp-server` on stdio, one per orchestrating run) talk to the same
scripted model server as the top-level run, so every level's requests are recorded in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import Hang, Reply, ScriptedOpenAI, Text, ToolCall

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.engine import EngineSettings, apply_mcp_settings, build_runtime
from agentls.core.events import EventKind, RunStatus
from agentls.core.runtime import AgentRuntime, RunResult
from agentls.core.target import Target
from agentls.core.tools.delegation import ChildAgentls

CALC = "def add(a, b):\n    return a + b\n"
DELEGATE = "mcp__agentls__delegate"
DELEGATE_PARALLEL = "mcp__agentls__delegate_parallel"


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # passed on to the child processes
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "calc.py").write_text(CALC, encoding="utf-8")
    return root


def level_of(body: dict[str, Any]) -> int:
    """Goals say which level of the tree they are for: 'level N ...'."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    match = re.search(r"Goal: level (\d+)", user)
    assert match, user
    return int(match.group(1))


def offered(body: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools") or []}


def tool_results(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def top_tool_result(scripted: ScriptedOpenAI) -> str:
    """The one tool result the top-level orchestrator's model was given (its delegate call's)."""
    (last,) = [b for b in scripted.requests if level_of(b) == 0 and tool_results(b)]
    (message,) = tool_results(last)
    return message


def delegate_down(body: dict[str, Any]) -> Reply:
    """Every orchestrator that may delegate hands 'level N+1' to another orchestrator."""
    level = level_of(body)
    if tool_results(body):
        return Text(f"level {level} combined")
    if DELEGATE in offered(body):
        goal = f"level {level + 1}"
        return ToolCall(DELEGATE, {"agent": "orchestrator", "goal": goal, "file": "calc.py"})
    return Text(f"level {level} leaf")


def runtime_for(workspace: Path, scripted: ScriptedOpenAI, **settings: Any) -> AgentRuntime:
    """A runtime on the scripted model; the caller closes it."""
    return build_runtime(
        workspace, EngineSettings(model="scripted-model", base_url=scripted.url, **settings)
    )


@contextlib.asynccontextmanager
async def running(
    workspace: Path, scripted: ScriptedOpenAI, responder: Any, **settings: Any
) -> AsyncIterator[AgentRuntime]:
    """A runtime on the scripted model answering with `responder`, closed at the end."""
    scripted.responder = responder
    runtime = runtime_for(workspace, scripted, **settings)
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def orchestrate(
    runtime: AgentRuntime, workspace: Path, budget: int | None = None
) -> RunResult:
    return await runtime.delegate(
        "orchestrator", "level 0", Target(path=workspace / "calc.py"), budget=budget
    )


async def orchestrated(
    workspace: Path, scripted: ScriptedOpenAI, responder: Any, **settings: Any
) -> RunResult:
    """One top-level orchestrator run ('level 0') on a runtime of its own."""
    async with running(workspace, scripted, responder, **settings) as runtime:
        return await orchestrate(runtime, workspace)


def tree_events(workspace: Path, run_id: str) -> list[Any]:
    with AuditStore.for_workspace(workspace) as audit:
        return audit.query(run_id=run_id, descendants=True)


def agentls_children() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if "mcp-server" in " ".join(p.cmdline())
    ]


async def test_depth_limit_holds_exactly_two_levels_below_the_top(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    result = await orchestrated(workspace, scripted, delegate_down)
    assert result.status is RunStatus.FINISHED and result.text == "level 0 combined"
    first_turns = {level_of(b): offered(b) for b in scripted.requests if not tool_results(b)}
    assert set(first_turns) == {0, 1, 2}  # never a level 3
    assert {DELEGATE, DELEGATE_PARALLEL} <= first_turns[0]
    assert {DELEGATE, DELEGATE_PARALLEL} <= first_turns[1]
    assert not any(name.startswith("mcp__agentls__") for name in first_turns[2])
    assert {"read_file", "search"} <= first_turns[2]  # the grandchild keeps its own tools
    started = [e for e in tree_events(workspace, result.run_id) if e.kind is EventKind.STARTED]
    assert [e.depth for e in started] == [0, 1, 2]
    assert [e.parent_run_id for e in started] == [None, started[0].run_id, started[1].run_id]


async def test_a_delegate_result_counts_the_tokens_of_the_runs_below_it(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    result = await orchestrated(workspace, scripted, delegate_down)
    events = tree_events(workspace, result.run_id)
    below = call_usage_total([e for e in events if e.depth >= 1])
    message = top_tool_result(scripted)
    assert f"{below:,} with the runs it delegated" in message


async def test_audit_of_a_run_shows_the_runs_it_delegated(
    workspace: Path, scripted: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await orchestrated(workspace, scripted, delegate_down, max_depth=1)
    capsys.readouterr()
    assert main(["--workspace", str(workspace), "audit", "--run", result.run_id[:8], "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_depth = {(e["depth"], e["kind"]) for e in lines}
    assert {(0, "started"), (0, "finished"), (1, "started"), (1, "finished")} <= by_depth
    assert {e["run_id"] for e in lines if e["depth"] == 1} != {result.run_id}


async def test_max_depth_zero_offers_the_top_level_run_no_delegation(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    result = await orchestrated(workspace, scripted, delegate_down, max_depth=0)
    assert result.text == "level 0 leaf"
    assert len(scripted.requests) == 1
    assert not any(n.startswith("mcp__agentls__") for n in offered(scripted.requests[0]))


async def test_max_depth_one_lets_only_the_top_level_run_delegate(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    result = await orchestrated(workspace, scripted, delegate_down, max_depth=1)
    assert result.text == "level 0 combined"
    first_turns = {level_of(b): offered(b) for b in scripted.requests if not tool_results(b)}
    assert set(first_turns) == {0, 1}
    assert DELEGATE in first_turns[0]
    assert not any(name.startswith("mcp__agentls__") for name in first_turns[1])


def fan_out(body: dict[str, Any]) -> Reply:
    """Level 0 fans out to an orchestrator and two explainers at once; level 1 delegates once."""
    level = level_of(body)
    if tool_results(body):
        return Text(f"level {level} combined")
    if level == 0 and DELEGATE_PARALLEL in offered(body):
        tasks = [
            {"agent": "orchestrator", "goal": "level 1 part a", "file": "calc.py"},
            {"agent": "explain", "goal": "level 1 part b", "file": "calc.py"},
            {"agent": "explain", "goal": "level 1 part c", "file": "calc.py"},
        ]
        return ToolCall(DELEGATE_PARALLEL, {"tasks": tasks})
    if level == 1 and DELEGATE in offered(body):
        return ToolCall(DELEGATE, {"agent": "explain", "goal": "level 2", "file": "calc.py"})
    return Text(f"an explanation at level {level}")


def call_usage_total(events: list[Any]) -> int:
    return sum(
        e.data["call_usage"]["input_tokens"] + e.data["call_usage"]["output_tokens"]
        for e in events
        if e.kind is EventKind.MODEL_CALL
    )


async def test_usage_across_levels_is_counted_once_in_the_ledger(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    async with running(workspace, scripted, fan_out) as runtime:
        result = await orchestrate(runtime, workspace)
        total = runtime.budgeter.snapshot().used
        top = runtime.budgeter.run_snapshot(result.run_id).used
    assert result.status is RunStatus.FINISHED
    events = tree_events(workspace, result.run_id)
    runs = {e.run_id for e in events}
    model_calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
    assert len(runs) == 5  # top, three children, one grandchild
    assert len(model_calls) == len(scripted.requests)  # every request the model got is recorded
    assert total == top == call_usage_total(events)  # the tree's spend, each call once


async def test_parallel_children_never_take_the_parent_past_its_budget(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    limit = 8000  # room for the top's first call and some children, not for everything
    async with running(workspace, scripted, fan_out) as runtime:
        result = await orchestrate(runtime, workspace, budget=limit)
        top = runtime.budgeter.run_snapshot(result.run_id)
        total = runtime.budgeter.snapshot().used
    events = tree_events(workspace, result.run_id)
    closings = [e for e in events if e.is_terminal]
    assert top.limit == limit and top.used <= limit
    assert total == top.used == call_usage_total(events)
    # The limit was what stopped the tree, not a lack of work.
    assert any(e.kind is EventKind.BUDGET_EXCEEDED for e in closings)
    child_budgets = [
        e.data["budget"] for e in events if e.kind is EventKind.STARTED and e.depth == 1
    ]
    assert child_budgets and all(b <= limit for b in child_budgets)


def hang_at(level: int, respond: Any = delegate_down) -> Any:
    def responder(body: dict[str, Any]) -> Reply:
        if level_of(body) == level and not tool_results(body):
            return Hang(300)
        reply: Reply = respond(body)
        return reply

    return responder


async def test_a_top_level_cancel_unwinds_every_level_and_leaves_no_process(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    async with running(workspace, scripted, hang_at(2)) as runtime:
        top = asyncio.create_task(orchestrate(runtime, workspace))
        # all three levels are running
        await aeventually(lambda: any(level_of(b) == 2 for b in scripted.requests), "level 2")
        children = agentls_children()
        assert len(children) == 2  # the child and the grandchild agentls
        started = time.monotonic()
        (run_id,) = runtime.active_runs
        runtime.cancel(run_id)  # what the editor's cancel and `agentls.cancel` do
        result = await top
        unwound = time.monotonic() - started
    print(f"top-level cancel unwound 3 levels in {unwound:.2f} s")
    assert result.status is RunStatus.CANCELLED
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    closings = [e for e in tree_events(workspace, result.run_id) if e.is_terminal]
    assert sorted(e.depth for e in closings) == [0, 1, 2]
    assert {e.kind for e in closings} == {EventKind.CANCELLED}


async def test_a_child_that_crashes_mid_call_gives_the_parent_a_clear_error(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    async with running(workspace, scripted, hang_at(1)) as runtime:
        top = asyncio.create_task(orchestrate(runtime, workspace))
        await aeventually(lambda: any(level_of(b) == 1 for b in scripted.requests), "level 1")
        # The child's lineage is the top run alone; the grandchild's names two runs.
        (child,) = [p for p in agentls_children() if "," not in p.cmdline()[-1]]
        child.kill()
        result = await top
    assert result.status is RunStatus.FINISHED  # the parent run goes on with the error in hand
    message = top_tool_result(scripted)
    assert "child agentls failed during delegate" in message
    tool_calls = [
        e
        for e in tree_events(workspace, result.run_id)
        if e.kind is EventKind.TOOL_CALL and e.run_id == result.run_id
    ]
    assert tool_calls[0].data["is_error"] is True


async def test_a_child_that_cannot_start_fails_the_run_with_a_clear_error(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    settings = EngineSettings(model="scripted-model", base_url=scripted.url)
    async with running(workspace, scripted, delegate_down) as runtime:
        # A child told to work in a folder that does not exist cannot start.
        runtime.delegation_tools = ChildAgentls(workspace / "gone", settings.model_dump_json())
        result = await orchestrate(runtime, workspace)
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("could not start the child agentls to delegate to")
    assert not scripted.requests  # no model call was made for a run that could not be set up


async def test_edits_a_child_proposes_become_the_parent_runs_proposed_edits(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    typed = "def add(a: int, b: int) -> int:\n    return a + b\n"

    def respond(body: dict[str, Any]) -> Reply:
        if level_of(body) == 1:  # the refactor agent, in the child agentls
            return Text(f"```python\n{typed}```")
        if tool_results(body):
            return Text("typed add")
        return ToolCall(DELEGATE, {"agent": "refactor", "goal": "level 1", "file": "calc.py"})

    result = await orchestrated(workspace, scripted, respond)
    assert result.status is RunStatus.FINISHED
    assert [(e.path, e.new_text, e.agent) for e in result.edits] == [("calc.py", typed, "refactor")]
    assert (workspace / "calc.py").read_text(encoding="utf-8") == CALC  # proposed, not written


async def test_a_child_silent_past_the_read_timeout_is_cancelled_with_a_clear_error(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    # The child's model never answers, so after its start the child reports nothing more.
    scripted.responder = hang_at(1)
    runtime = runtime_for(workspace, scripted, mcp_call_timeout=3)
    try:
        result = await asyncio.wait_for(orchestrate(runtime, workspace), 120)
    finally:
        await runtime.aclose()
    assert result.status is RunStatus.FINISHED  # the parent run goes on with the error in hand
    message = top_tool_result(scripted)
    assert (
        "the child agentls sent nothing for 3 s during delegate (the read timeout, setting "
        "agentls.mcpCallTimeout); the call was cancelled, and with it the child's runs"
    ) in message
    events = tree_events(workspace, result.run_id)
    (child_end,) = [e for e in events if e.depth == 1 and e.is_terminal]
    assert child_end.kind is EventKind.CANCELLED
    (call,) = [e for e in events if e.kind is EventKind.TOOL_CALL and e.depth == 0]
    assert call.data["is_error"] is True
    with TokenBudgeter.for_workspace(workspace) as ledger:  # the hung call holds nothing back
        assert ledger.run_snapshot(child_end.run_id).reserved == 0
        assert ledger.snapshot().reserved == 0


SECRET = "AKIA" + "Q7X2M4B9K1Z8R5T3"


def delegate_a_reading(body: dict[str, Any]) -> Reply:
    """The top run delegates once; the child's run reads calc.py, then answers."""
    level = level_of(body)
    if tool_results(body):
        return Text(f"level {level} done")
    if level == 0:
        goal = f"level 1 with key {SECRET}"
        return ToolCall(DELEGATE, {"agent": "orchestrator", "goal": goal, "file": "calc.py"})
    return ToolCall("read_file", {"path": "calc.py"})


async def test_what_the_child_does_shows_in_the_parent_runs_progress(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = delegate_a_reading
    runtime = runtime_for(workspace, scripted)
    seen: list[Any] = []
    runtime.subscribe(seen.append)
    try:
        result = await orchestrate(runtime, workspace)
    finally:
        await runtime.aclose()
    assert result.status is RunStatus.FINISHED
    progress = [
        e
        for e in seen
        if e.kind is EventKind.TOOL_STARTED and e.data.get("progress") and e.depth == 0
    ]
    shown = [e.data["arguments"] for e in progress]
    assert all(e.data["tool"] == DELEGATE for e in progress)
    assert any(
        line.startswith("→ orchestrator: calling read_file(path='calc.py')") for line in shown
    ), shown
    assert all(len(line) <= 202 for line in shown)  # "→ " and one bounded line
    assert not any(SECRET in line for line in shown)  # the child's goal came redacted
    assert any("[REDACTED]" in line for line in shown), shown
    persisted = tree_events(workspace, result.run_id)
    assert not any(e.data.get("progress") for e in persisted)  # shown live, never stored


async def test_an_acp_panel_shows_the_childs_steps_inside_the_delegate_call(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    from agentls.acp.updates import RunRenderer

    scripted.responder = delegate_a_reading
    runtime = runtime_for(workspace, scripted)
    sent: list[Any] = []

    async def send(update: Any) -> None:
        sent.append(update.model_dump(by_alias=True, exclude_none=True))

    async def current(path: Path) -> str | None:
        return None

    renderer = RunRenderer(send, runtime, current)
    renderer.watch("top")
    runtime.subscribe(renderer.on_event)
    try:
        result = await runtime.delegate(
            "orchestrator", "level 0", Target(path=workspace / "calc.py"), run_id="top"
        )
        await renderer.flush()
    finally:
        await renderer.aclose()
        await runtime.aclose()
    assert result.status is RunStatus.FINISHED
    started = [u for u in sent if u["sessionUpdate"] == "tool_call"]
    assert [u["title"].split("(")[0] for u in started] == [DELEGATE]  # one call, not one a step
    call_id = started[0]["toolCallId"]
    steps = [
        u["content"][0]["content"]["text"]
        for u in sent
        if u["sessionUpdate"] == "tool_call_update"
        and u["toolCallId"] == call_id
        and "content" in u
    ]
    assert any(s.startswith("→ orchestrator: calling read_file(path='calc.py')") for s in steps)
    ends = [u.get("status") for u in sent if u.get("toolCallId") == call_id and u.get("status")]
    assert ends == ["in_progress", "completed"]


async def test_a_child_message_over_the_size_bound_ends_the_connection_not_the_run(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        if level_of(body) == 1:
            return Text("x" * 60_000)  # the delegate result carries it: over the bound
        if tool_results(body):
            return Text("level 0 done")
        return ToolCall(DELEGATE, {"agent": "explain", "goal": "level 1", "file": "calc.py"})

    scripted.responder = respond
    runtime = runtime_for(workspace, scripted)
    settings = EngineSettings(model="scripted-model", base_url=scripted.url)
    runtime.delegation_tools = ChildAgentls(
        workspace, settings.model_dump_json(), max_message_chars=40_000
    )
    try:
        result = await orchestrate(runtime, workspace)
        children = agentls_children()
    finally:
        await runtime.aclose()
    assert result.status is RunStatus.FINISHED, result.error
    message = top_tool_result(scripted)
    assert (
        "the child agentls sent a message of more than 40,000 characters, so agentls closed the "
        "connection (no more delegation in this run) during delegate"
    ) in message
    assert children == []  # closed with the run


async def test_the_read_timeout_follows_the_mcp_call_timeout_setting(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    runtime = runtime_for(workspace, scripted, mcp_call_timeout=7)
    try:
        child = runtime.delegation_tools
        assert isinstance(child, ChildAgentls) and child.read_timeout == 7
        apply_mcp_settings(runtime, EngineSettings(mcp_call_timeout=9))  # the editor changed it
        assert child.read_timeout == 9
    finally:
        await runtime.aclose()


async def test_a_child_that_keeps_reporting_is_still_cut_at_the_time_limit(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        if level_of(body) == 1:  # streams for about 30 s, reporting "writing" every 2 s
            return Text(" ".join(f"w{i}" for i in range(300)), chunk_delay=0.1)
        if tool_results(body):
            return Text("level 0 done")
        return ToolCall(DELEGATE, {"agent": "explain", "goal": "level 1", "file": "calc.py"})

    scripted.responder = respond
    runtime = runtime_for(workspace, scripted, mcp_call_timeout=5)
    settings = EngineSettings(model="scripted-model", base_url=scripted.url)
    runtime.delegation_tools = ChildAgentls(
        workspace, settings.model_dump_json(), read_timeout=5, time_limit=8
    )
    try:
        result = await asyncio.wait_for(orchestrate(runtime, workspace), 120)
    finally:
        await runtime.aclose()
    assert result.status is RunStatus.FINISHED
    message = top_tool_result(scripted)
    assert (
        "the child agentls did not finish delegate within 8 s (the time limit of one delegation)"
    ) in message
    (child_end,) = [
        e for e in tree_events(workspace, result.run_id) if e.depth == 1 and e.is_terminal
    ]
    assert child_end.kind is EventKind.CANCELLED
