"""Parallel runs against one budget, end to end through the runtime and the scripted server:
runs wait for each other's calls in flight instead of being refused, a wait is cancellable and
bounded, and the limit holds; on the workspace's ledger file and on a team database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import Hang, ScriptedOpenAI, Text

from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.events import RunStatus
from agentls.core.parallel import ParallelTask, delegate_parallel
from agentls.core.runtime import AgentRuntime
from agentls.core.target import Target

MODEL = "gpt-4o-mini"  # exact prompt counts (bpe-openai)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(models=(MODEL,)) as s:
        yield s


@pytest.fixture
async def runtime(
    tmp_path: Path, server: ScriptedOpenAI, backend: str | None
) -> AsyncIterator[AgentRuntime]:
    (tmp_path / "two.py").write_text("def twice(x):\n    return 2 * x\n")
    rt = build_runtime(tmp_path, EngineSettings(model=MODEL, base_url=server.url, api_key="sk-t"))
    yield rt
    await rt.aclose()


def waiting(runtime: AgentRuntime) -> int:
    """Calls waiting in the ledger for others' reservations to settle."""
    return runtime.budgeter.waiting_calls()


def explain(runtime: AgentRuntime) -> ParallelTask:
    return ParallelTask(
        agent="explain", goal="explain", target=Target(path=runtime.workspace / "two.py")
    )


async def test_sixteen_runs_share_a_thousand_tokens_instead_of_refusing_each_other(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.latency = 0.05
    server.responder = lambda body: Text("It doubles x.", completion_tokens=40)
    runtime.budgeter.set_limit(1000)

    result = await delegate_parallel(
        runtime, [explain(runtime) for _ in range(16)], max_parallel=16
    )

    finished = [r for r in result.results if r.status is RunStatus.FINISHED]
    refused = [r for r in result.results if r.status is RunStatus.BUDGET_EXCEEDED]
    assert len(finished) + len(refused) == 16
    snap = runtime.budgeter.snapshot()
    assert snap.used <= 1000 and snap.reserved == 0
    cost = finished[0].usage.total  # ~130 tokens: an ~90-token prompt and 40 out
    assert len(finished) == snap.used // cost >= 7  # was 1: one call made, fifteen refused
    assert 1000 - snap.used < 2 * cost  # refused only once spend left no room
    for r in refused:
        whose = "Team" if runtime.budgeter.store.shared else "Workspace"
        assert f"{whose} token budget exhausted" in (r.error or "")
    assert len(server.requests) == len(finished)


async def test_a_run_waiting_for_the_budget_can_be_cancelled(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.responder = lambda body: Hang(30, Text("late"))
    runtime.budgeter.set_limit(1150)  # room for one reservation (prompt + 1,024) at a time
    first = asyncio.create_task(runtime.delegate("explain", "a", explain(runtime).target))
    await aeventually(lambda: server.requests, "the first run's call")
    second_task = explain(runtime)
    second = asyncio.create_task(
        runtime.delegate("explain", "b", second_task.target, run_id=second_task.run_id)
    )
    # the second run waits for the first one's call
    await aeventually(lambda: waiting(runtime) >= 1, "the second run to wait")

    runtime.cancel(second_task.run_id)
    result = await second

    assert result.status is RunStatus.CANCELLED
    assert len(server.requests) == 1  # the waiting run never called the model
    assert waiting(runtime) == 0
    runtime.cancel()
    await first
    snap = await runtime.budgeter.asnapshot()
    assert snap.reserved == 0


async def test_a_wait_is_bounded_and_the_run_says_it_waited(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.responder = lambda body: Hang(30, Text("late"))
    runtime.config.budget_wait_seconds = 0.3
    runtime.budgeter.set_limit(1150)
    first = asyncio.create_task(runtime.delegate("explain", "a", explain(runtime).target))
    await aeventually(lambda: server.requests, "the first run's call")

    result = await runtime.delegate("explain", "b", explain(runtime).target)

    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert "waited" in (result.error or "") and "calls in flight" in (result.error or "")
    runtime.cancel()
    await first
