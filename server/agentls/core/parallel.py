"""delegate_parallel: many delegations at once, at most `max_parallel` in flight, the rest queued.

One task's failure never touches the others; the shared budget holds across all of them because
every model call of every run reserves against the same ledger. Cancelling the group cancels every
run in it (queued ones never start); cancelling one run cancels only that one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from agentls.core.definitions import AgentDefinition
from agentls.core.events import TRANSIENT_KINDS, EventKind, RunEvent, RunStatus, Usage, new_id
from agentls.core.runtime import AgentRuntime, EditApplier, EventListener, RunResult
from agentls.core.target import Target


class ParallelTask(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    agent: str | AgentDefinition
    goal: str | None = None
    target: Target | None = None
    budget: int | None = Field(default=None, gt=0)
    run_id: str = Field(default_factory=new_id)

    @property
    def agent_name(self) -> str:
        return self.agent.name if isinstance(self.agent, AgentDefinition) else self.agent


class ParallelResult(BaseModel):
    group_id: str
    results: list[RunResult]
    wall_ms: float
    usage: Usage
    per_agent: dict[str, Usage]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status.value] = out.get(r.status.value, 0) + 1
        return out


@dataclass
class GroupProgress:
    """What a parent progress shows: runs done out of total, and tokens so far across the group."""

    total: int
    done: int = 0
    usage_by_run: dict[str, Usage] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(u.total for u in self.usage_by_run.values())


@dataclass
class ParallelGroup:
    """A handle to cancel a group in flight."""

    group_id: str
    run_ids: list[str]
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self, runtime: AgentRuntime) -> list[str]:
        self.cancelled.set()
        return [rid for rid in self.run_ids if runtime.cancel(rid)]


GROUP_CANCELLED = "the group was cancelled before this run started"


async def delegate_parallel(
    runtime: AgentRuntime,
    tasks: list[ParallelTask],
    *,
    max_parallel: int | None = None,
    group: ParallelGroup | None = None,
    on_progress: Callable[[GroupProgress], None] | None = None,
    apply: Callable[[ParallelTask], EditApplier | None] | None = None,
    listener: EventListener | None = None,
    parent_run_id: str | None = None,
    depth: int = 0,
    ancestor_run_ids: tuple[str, ...] = (),
) -> ParallelResult:
    """Run every task; results come back in task order, each with its own status."""
    group = group or ParallelGroup(new_id(), [t.run_id for t in tasks])
    limit = asyncio.Semaphore(max_parallel or runtime.config.max_parallel)
    progress = GroupProgress(total=len(tasks))
    ours = {t.run_id for t in tasks}

    def track(event: RunEvent) -> None:
        if event.run_id in ours and event.kind not in TRANSIENT_KINDS:
            progress.usage_by_run[event.run_id] = event.usage
            if on_progress and (event.kind is EventKind.MODEL_CALL or event.is_terminal):
                on_progress(progress)
        if listener:
            listener(event)

    def not_started(task: ParallelTask, status: RunStatus, error: str) -> RunResult:
        return runtime.not_started(
            task.run_id,
            task.agent_name,
            task.goal or "",
            status,
            error,
            parent_run_id=parent_run_id,
            depth=depth,
            listener=track,
        )

    async def one(task: ParallelTask) -> RunResult:
        try:
            if group.cancelled.is_set():
                return not_started(task, RunStatus.CANCELLED, GROUP_CANCELLED)
            try:
                definition = runtime.resolve_agent(task.agent)
                return await runtime.delegate(
                    definition,
                    task.goal or definition.description,
                    task.target,
                    budget=task.budget,
                    run_id=task.run_id,
                    parent_run_id=parent_run_id,
                    depth=depth,
                    ancestor_run_ids=ancestor_run_ids,
                    apply=apply(task) if apply else None,
                    listener=track,
                    slot=limit,
                )
            except (LookupError, ValueError, OSError) as exc:  # a bad task fails alone
                return not_started(task, RunStatus.FAILED, str(exc))
        finally:
            progress.done += 1
            if on_progress:
                on_progress(progress)

    started = time.monotonic()
    # Not gather: a cancelled gather returns when its first child ends, while the others may
    # still be settling their ledger entries; the group ends only after every run has.
    children = [asyncio.ensure_future(one(t)) for t in tasks]
    try:
        if children:
            await asyncio.wait(children)
    except asyncio.CancelledError:
        for child in children:
            child.cancel()
        await asyncio.wait(children)
        raise
    results = [child.result() for child in children]
    per_agent: dict[str, Usage] = {}
    total = Usage()
    for r in results:
        per_agent[r.agent] = per_agent.get(r.agent, Usage()) + r.usage
        total = total + r.usage
    return ParallelResult(
        group_id=group.group_id,
        results=results,
        wall_ms=(time.monotonic() - started) * 1000.0,
        usage=total,
        per_agent=per_agent,
    )
