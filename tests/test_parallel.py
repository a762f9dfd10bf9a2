"""delegate_parallel against the scripted model server: isolation, queueing, group and single
cancel, the budget invariant across a group, the parent progress and the per-agent summary."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import Hang, Reply, ScriptedOpenAI, Status, Text, turns

from agentls.core.budget import TokenBudgeter
from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.events import EventKind, RunEvent, RunStatus, Usage
from agentls.core.parallel import (
    GroupProgress,
    ParallelGroup,
    ParallelTask,
    delegate_parallel,
)
from agentls.core.runtime import AgentRuntime
from agentls.core.target import Target

APP = "def add(a, b):\n    return a + b\n"
GOAL = re.compile(r"Goal: (.*)")
WAIT = 10.0


def goal_of(body: dict[str, Any]) -> str:
    """The goal a request was made for (from the first user message)."""
    for message in body["messages"]:
        if message.get("role") == "user":
            match = GOAL.search(message.get("content") or "")
            if match:
                return match.group(1)
    return ""


def by_goal(body: dict[str, Any]) -> Reply:
    """Answers each run with its own goal; goals containing 'boom' get a non-retried 400."""
    goal = goal_of(body)
    if "boom" in goal:
        return Status(400, "scripted failure for " + goal)
    return Text(f"answer to {goal}")


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as s:
        s.responder = by_goal
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    return root.resolve()


@pytest.fixture
async def runtime(workspace: Path, server: ScriptedOpenAI) -> AsyncIterator[AgentRuntime]:
    rt = build_runtime(
        workspace,
        EngineSettings(
            model="scripted-model", base_url=server.url, api_key="sk-test", max_output_tokens=64
        ),
    )
    yield rt
    await rt.aclose()


def app_target(workspace: Path) -> Target:
    return Target(path=workspace / "src" / "app.py")


class Concurrency:
    """An async responder that measures how many requests the server holds at once."""

    def __init__(self, hold: float, reply: Callable[[dict[str, Any]], Reply] = by_goal) -> None:
        self.hold = hold
        self.reply = reply
        self.now = 0
        self.peak = 0
        self.seen = 0

    async def __call__(self, body: dict[str, Any]) -> Reply:
        self.now += 1
        self.seen += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.now -= 1
        return self.reply(body)


# Isolation


async def test_one_failure_never_touches_the_others(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    outside = workspace.parent / "outside.py"
    outside.write_text("x = 1\n")
    tasks = [
        ParallelTask(agent="review", goal="first ok", target=app_target(workspace)),
        ParallelTask(agent="review", goal="boom: the model fails", target=app_target(workspace)),
        ParallelTask(agent="no-such-agent", goal="unknown agent"),
        ParallelTask(
            agent="explain", goal="missing file", target=Target(path=workspace / "gone.py")
        ),
        ParallelTask(agent="explain", goal="outside target", target=Target(path=outside)),
        ParallelTask(agent="explain", goal="last ok", target=app_target(workspace)),
    ]
    result = await delegate_parallel(runtime, tasks)

    assert [r.run_id for r in result.results] == [t.run_id for t in tasks]  # task order
    ok_first, model_error, unknown, missing, outside_r, ok_last = result.results
    assert (ok_first.status, ok_first.text) == (RunStatus.FINISHED, "answer to first ok")
    assert (ok_last.status, ok_last.text) == (RunStatus.FINISHED, "answer to last ok")
    assert model_error.status is RunStatus.FAILED
    assert "400" in (model_error.error or "")
    assert unknown.status is RunStatus.FAILED
    assert "unknown agent 'no-such-agent'" in (unknown.error or "")
    assert unknown.agent == "no-such-agent"
    assert missing.status is RunStatus.FAILED
    assert "gone.py" in (missing.error or "")
    assert outside_r.status is RunStatus.FAILED
    assert "outside the workspace" in (outside_r.error or "")
    assert result.counts() == {"finished": 2, "failed": 4}
    # Only the runs that could reach the model did: two answers and the failing call.
    assert sorted(goal_of(b) for b in server.requests) == sorted(
        ["first ok", "boom: the model fails", "last ok"]
    )
    assert runtime.active_runs == []


async def test_a_failing_run_in_flight_does_not_cancel_slow_siblings(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    def reply(body: dict[str, Any]) -> Reply:
        return Status(400, "fast failure") if "boom" in goal_of(body) else Text("slow answer")

    slow = Concurrency(0.3, reply)  # the failure lands while the others still wait
    server.responder = slow
    tasks = [ParallelTask(agent="explain", goal=f"slow {i}") for i in range(3)]
    tasks.insert(1, ParallelTask(agent="explain", goal="boom"))
    result = await delegate_parallel(runtime, tasks)
    assert [r.status for r in result.results] == [
        RunStatus.FINISHED,
        RunStatus.FAILED,
        RunStatus.FINISHED,
        RunStatus.FINISHED,
    ]
    assert slow.peak == 4


# Queueing


async def test_queue_holds_runs_beyond_max_parallel(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    meter = Concurrency(0.15)
    server.responder = meter
    tasks = [
        ParallelTask(agent="explain", goal=f"task {i}", target=app_target(workspace))
        for i in range(7)
    ]
    result = await delegate_parallel(runtime, tasks, max_parallel=2)
    assert all(r.status is RunStatus.FINISHED for r in result.results)
    assert [r.text for r in result.results] == [f"answer to task {i}" for i in range(7)]
    assert meter.peak == 2  # never more than two at the server, and two did overlap
    assert meter.seen == 7
    # Seven calls of 0.15 s two at a time take at least four rounds.
    assert result.wall_ms >= 4 * 150 * 0.95


async def test_default_cap_comes_from_the_setting(workspace: Path, server: ScriptedOpenAI) -> None:
    rt = build_runtime(
        workspace,
        EngineSettings(
            model="scripted-model", base_url=server.url, api_key="sk-test", max_parallel=3
        ),
    )
    try:
        assert rt.config.max_parallel == 3
        meter = Concurrency(0.1)
        server.responder = meter
        tasks = [ParallelTask(agent="explain", goal=f"t{i}") for i in range(8)]
        result = await delegate_parallel(rt, tasks)
        assert result.counts() == {"finished": 8}
        assert meter.peak == 3
    finally:
        await rt.aclose()
    assert EngineSettings().max_parallel == 8


async def test_multi_turn_runs_hold_their_slot_until_they_end(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    meter = Concurrency(0.05, turns(2, "read_file", {"path": "src/app.py"}))
    server.responder = meter
    tasks = [ParallelTask(agent="research", goal=f"question {i}") for i in range(5)]
    result = await delegate_parallel(runtime, tasks, max_parallel=2)
    assert result.counts() == {"finished": 5}
    assert meter.seen == 15  # three calls per run
    assert meter.peak == 2


# Cancelling


async def test_group_cancel_cancels_running_and_skips_queued(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    server.responder = lambda body: Hang(30, Text("too late"))
    tasks = [ParallelTask(agent="explain", goal=f"hang {i}") for i in range(5)]
    group = ParallelGroup("g1", [t.run_id for t in tasks])
    running = asyncio.create_task(delegate_parallel(runtime, tasks, max_parallel=2, group=group))
    await aeventually(lambda: len(server.requests) == 2)
    assert sorted(runtime.active_runs) == sorted(t.run_id for t in tasks)  # 2 running, 3 queued

    cancelled = group.cancel(runtime)
    result = await asyncio.wait_for(running, WAIT)

    assert sorted(cancelled) == sorted(t.run_id for t in tasks)
    assert [r.status for r in result.results] == [RunStatus.CANCELLED] * 5
    assert result.group_id == "g1"
    for r in result.results[2:]:
        assert "before this run started" in (r.error or "")
    # Every run has ended, so no call can still be on its way: the queued three never made one.
    assert runtime.active_runs == []
    assert len(server.requests) == 2
    assert runtime.budgeter.snapshot().reserved == 0


async def registered_not_started(runtime: AgentRuntime, started: list[str]) -> list[str]:
    """Step the loop until runs are registered with the runtime but none has taken a step."""
    for _ in range(1000):
        if runtime.active_runs:
            assert not started, "a run started before the test could cancel it"
            return runtime.active_runs
        await asyncio.sleep(0)
    raise TimeoutError("no run was registered")


async def test_group_cancel_right_after_start_still_returns_results(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.responder = lambda body: Hang(30, Text("too late"))
    started: list[str] = []
    runtime.subscribe(lambda e: started.append(e.run_id) if e.kind is EventKind.STARTED else None)
    tasks = [ParallelTask(agent="explain", goal=f"hang {i}") for i in range(4)]
    group = ParallelGroup("g2", [t.run_id for t in tasks])
    running = asyncio.create_task(delegate_parallel(runtime, tasks, max_parallel=2, group=group))
    await registered_not_started(runtime, started)
    assert len(group.cancel(runtime)) == 4
    result = await asyncio.wait_for(running, WAIT)
    assert [r.status for r in result.results] == [RunStatus.CANCELLED] * 4
    assert runtime.active_runs == []
    assert server.requests == []


async def test_single_cancel_cancels_only_that_run(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    def reply(body: dict[str, Any]) -> Reply:
        goal = goal_of(body)
        return Hang(30, Text("too late")) if goal == "victim" else Hang(0.3, Text(f"ok {goal}"))

    server.responder = reply
    tasks = [
        ParallelTask(agent="explain", goal="a"),
        ParallelTask(agent="explain", goal="victim"),
        ParallelTask(agent="review", goal="b"),
    ]
    running = asyncio.create_task(delegate_parallel(runtime, tasks))
    await aeventually(lambda: len(server.requests) == 3)

    assert runtime.cancel(tasks[1].run_id) == [tasks[1].run_id]
    result = await asyncio.wait_for(running, WAIT)

    assert [r.status for r in result.results] == [
        RunStatus.FINISHED,
        RunStatus.CANCELLED,
        RunStatus.FINISHED,
    ]
    assert [result.results[0].text, result.results[2].text] == ["ok a", "ok b"]
    assert result.results[1].error == "cancelled by the user"


async def test_single_cancel_right_after_start_cancels_only_that_run(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    started: list[str] = []
    runtime.subscribe(lambda e: started.append(e.run_id) if e.kind is EventKind.STARTED else None)
    tasks = [ParallelTask(agent="explain", goal=f"t{i}") for i in range(3)]
    running = asyncio.create_task(delegate_parallel(runtime, tasks))
    registered = await registered_not_started(runtime, started)
    assert runtime.cancel(registered[0]) == [registered[0]]  # before the run took a step
    result = await asyncio.wait_for(running, WAIT)  # the group still returns its results
    by_id = {r.run_id: r for r in result.results}
    assert by_id[registered[0]].status is RunStatus.CANCELLED
    others = [r for r in result.results if r.run_id != registered[0]]
    assert [r.status for r in others] == [RunStatus.FINISHED] * 2
    assert sorted(goal_of(b) for b in server.requests) == sorted(
        t.goal for t in tasks if t.run_id != registered[0]
    )


async def test_cancelling_a_queued_run_cancels_only_that_run(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.responder = Concurrency(0.2)
    closing: list[RunEvent] = []
    runtime.subscribe(lambda e: closing.append(e) if e.is_terminal else None)
    tasks = [ParallelTask(agent="explain", goal=f"q{i}") for i in range(4)]
    running = asyncio.create_task(delegate_parallel(runtime, tasks, max_parallel=1))
    await aeventually(lambda: len(server.requests) == 1)
    assert tasks[2].run_id in runtime.active_runs  # queued runs can be cancelled by id

    assert runtime.cancel(tasks[2].run_id) == [tasks[2].run_id]
    result = await asyncio.wait_for(running, WAIT)

    assert [r.status for r in result.results] == [
        RunStatus.FINISHED,
        RunStatus.FINISHED,
        RunStatus.CANCELLED,
        RunStatus.FINISHED,
    ]
    assert sorted(goal_of(b) for b in server.requests) == ["q0", "q1", "q3"]
    # The run that never started still ends with an event (audit trail, editor progress).
    (event,) = [e for e in closing if e.run_id == tasks[2].run_id]
    assert (event.kind, event.status) == (EventKind.CANCELLED, RunStatus.CANCELLED)
    assert runtime.audit is not None
    assert [e.kind for e in runtime.audit.query(run_id=tasks[2].run_id)] == [EventKind.CANCELLED]
    assert runtime.active_runs == []


async def test_a_task_that_cannot_start_is_recorded_as_failed(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    tasks = [ParallelTask(agent="ghost", goal="haunt"), ParallelTask(agent="explain", goal="ok")]
    result = await delegate_parallel(runtime, tasks)
    assert [r.status for r in result.results] == [RunStatus.FAILED, RunStatus.FINISHED]
    assert runtime.audit is not None
    (event,) = runtime.audit.query(run_id=tasks[0].run_id)
    assert (event.kind, event.agent, event.goal) == (EventKind.FAILED, "ghost", "haunt")
    assert "unknown agent 'ghost'" in (event.error or "")


async def test_cancelling_the_caller_cancels_every_run(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.responder = lambda body: Hang(30, Text("too late"))
    closing: list[RunEvent] = []
    runtime.subscribe(lambda e: closing.append(e) if e.is_terminal else None)
    tasks = [ParallelTask(agent="explain", goal=f"hang {i}") for i in range(3)]
    running = asyncio.create_task(delegate_parallel(runtime, tasks))
    await aeventually(lambda: len(server.requests) == 3)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, WAIT)
    assert sorted(e.run_id for e in closing) == sorted(t.run_id for t in tasks)
    assert {e.kind for e in closing} == {EventKind.CANCELLED}
    assert runtime.active_runs == []


# The budget invariant across a group


def _reservation_size(runtime: AgentRuntime, server: ScriptedOpenAI, goal: str) -> int:
    """What one `explain` call with `goal` reserves: its prompt bound plus max_tokens."""
    from agentls.core.llm import ChatRequest

    definition = runtime.resolve_agent("explain")
    messages = [
        {"role": "system", "content": definition.instructions.strip()},
        {"role": "user", "content": f"Goal: {goal}"},
    ]
    model = runtime.model_factory(None)
    request = ChatRequest(messages=messages, max_tokens=runtime.config.max_output_tokens)
    return model.prompt_token_bound(request) + request.max_tokens


async def test_total_limit_holds_across_the_group_and_waiting_runs_use_it(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.latency = 0.2  # every reservation is made before any call returns
    goals = [f"question {i}" for i in range(8)]
    size = _reservation_size(runtime, server, goals[0])
    limit = 3 * size + size // 2  # room for three calls in flight, not four
    runtime.budgeter.set_limit(limit)

    result = await delegate_parallel(
        runtime, [ParallelTask(agent="explain", goal=g) for g in goals]
    )

    finished = [r for r in result.results if r.status is RunStatus.FINISHED]
    refused = [r for r in result.results if r.status is RunStatus.BUDGET_EXCEEDED]
    # Calls in flight made the others wait, not fail: they ran once spend left room.
    assert len(finished) > 3
    assert len(finished) + len(refused) == 8
    snap = runtime.budgeter.snapshot()
    assert snap.used <= limit
    assert snap.reserved == 0
    for r in refused:
        assert "Workspace token budget exhausted" in (r.error or "")
        assert r.usage == Usage()
    if refused:
        # Refused only because committed spend left no room for one more call's minimum.
        assert limit - snap.used < size
    assert snap.used == result.usage.total == sum(r.usage.total for r in finished)
    # The server got exactly the calls that were allowed, none of the refused ones.
    finished_goals = [r.text.removeprefix("answer to ") for r in finished]
    assert sorted(goal_of(b) for b in server.requests) == sorted(finished_goals)


async def test_total_limit_holds_for_multi_turn_runs_refused_midway(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.latency = 0.05
    server.responder = turns(2, "read_file", {"path": "src/app.py"})
    limit = 9_000
    runtime.budgeter.set_limit(limit)
    calls: dict[str, int] = {}
    runtime.subscribe(
        lambda e: (
            calls.__setitem__(e.run_id, calls.get(e.run_id, 0) + 1)
            if e.kind is EventKind.MODEL_CALL
            else None
        )
    )
    tasks = [ParallelTask(agent="research", goal=f"q{i}") for i in range(6)]
    result = await delegate_parallel(runtime, tasks, max_parallel=6)

    statuses = result.counts()
    assert statuses.get("budget_exceeded", 0) >= 1  # the limit bit
    assert set(statuses) <= {"finished", "budget_exceeded"}
    snap = runtime.budgeter.snapshot()
    assert snap.used <= limit
    assert snap.reserved == 0
    assert snap.used == result.usage.total
    # Every call the server answered was one the runtime committed, and no other.
    assert len(server.requests) == sum(calls.values())
    for r in result.results:
        assert r.usage.total == runtime.budgeter.run_usage(r.run_id).total


async def test_per_agent_limit_stops_only_that_agent(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    runtime.budgeter.set_limit(1, agent="review")  # nothing fits
    tasks = [
        ParallelTask(agent="review", goal="r1"),
        ParallelTask(agent="explain", goal="e1"),
        ParallelTask(agent="review", goal="r2"),
    ]
    result = await delegate_parallel(runtime, tasks)
    assert [r.status for r in result.results] == [
        RunStatus.BUDGET_EXCEEDED,
        RunStatus.FINISHED,
        RunStatus.BUDGET_EXCEEDED,
    ]
    assert [goal_of(b) for b in server.requests] == ["e1"]
    assert runtime.budgeter.snapshot().agents["review"].used == 0


async def test_shared_ledger_file_is_the_one_every_run_reserves_against(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    await delegate_parallel(
        runtime, [ParallelTask(agent="explain", goal=f"g{i}") for i in range(3)]
    )
    used = runtime.budgeter.snapshot().used
    with TokenBudgeter.for_workspace(workspace) as reopened:
        assert reopened.snapshot().used == used > 0


# Progress and summary


async def test_group_progress_reports_done_of_total_and_tokens(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.responder = Concurrency(0.05)
    seen: list[tuple[int, int, int]] = []

    def on_progress(p: GroupProgress) -> None:
        seen.append((p.done, p.total, p.tokens))

    tasks = [ParallelTask(agent="explain", goal=f"p{i}") for i in range(4)]
    tasks.append(ParallelTask(agent="missing-agent"))
    result = await delegate_parallel(runtime, tasks, max_parallel=2, on_progress=on_progress)

    assert seen, "no progress was reported"
    assert all(total == 5 for _, total, _ in seen)
    dones = [d for d, _, _ in seen]
    assert dones == sorted(dones)
    assert sorted(set(dones)) == [0, 1, 2, 3, 4, 5] or sorted(set(dones)) == [1, 2, 3, 4, 5]
    assert dones.count(5) >= 1 and seen[-1][0] == 5
    tokens = [t for _, _, t in seen]
    assert tokens == sorted(tokens)  # tokens so far only grow
    assert tokens[-1] == result.usage.total > 0
    # Tokens show up while runs are still going, not only at the end.
    assert any(t > 0 for d, _, t in seen if d < 5)


async def test_summary_per_agent_usage_is_the_sum_of_its_runs(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.responder = lambda body: Text("x" * (10 * len(goal_of(body))))
    tasks = [
        ParallelTask(agent="review", goal="short"),
        ParallelTask(agent="explain", goal="a longer goal"),
        ParallelTask(agent="review", goal="a much, much longer goal"),
        ParallelTask(agent="explain", goal="mid goal"),
        ParallelTask(agent="nobody", goal="fails before any call"),
    ]
    result = await delegate_parallel(runtime, tasks)
    assert set(result.per_agent) == {"review", "explain", "nobody"}
    for agent, usage in result.per_agent.items():
        runs = [r for r in result.results if r.agent == agent]
        expected = Usage()
        for r in runs:
            expected = expected + r.usage
        assert usage == expected
    assert result.per_agent["nobody"] == Usage()
    assert result.per_agent["review"].total > 0
    assert result.usage.total == sum(u.total for u in result.per_agent.values())
    snap = runtime.budgeter.snapshot()
    assert snap.agents["review"].used == result.per_agent["review"].total
    assert snap.agents["explain"].used == result.per_agent["explain"].total
    assert result.wall_ms > 0


async def test_listener_sees_every_event_of_the_group(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    events: list[RunEvent] = []
    tasks = [ParallelTask(agent="explain", goal=f"l{i}") for i in range(3)]
    await delegate_parallel(runtime, tasks, listener=events.append)
    for t in tasks:
        kinds = [e.kind for e in events if e.run_id == t.run_id]
        assert kinds[0] is EventKind.STARTED
        assert EventKind.MODEL_CALL in kinds
        assert kinds[-1] is EventKind.FINISHED


async def test_parent_run_id_links_every_child(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    tasks = [ParallelTask(agent="explain", goal=f"c{i}") for i in range(2)]
    result = await delegate_parallel(runtime, tasks, parent_run_id="parent-1", depth=1)
    assert all(r.parent_run_id == "parent-1" for r in result.results)
    assert runtime.audit is not None
    started = [
        e for e in runtime.audit.query(run_id=tasks[0].run_id) if e.kind is EventKind.STARTED
    ]
    assert started and started[0].parent_run_id == "parent-1" and started[0].depth == 1
