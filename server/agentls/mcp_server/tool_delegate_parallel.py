"""The `delegate_parallel` tool: several delegations at once, results in task order."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field

from agentls.core import telemetry
from agentls.core.parallel import ParallelTask
from agentls.core.parallel import delegate_parallel as run_parallel
from agentls.mcp_server.arguments import ArgumentError, BudgetArg, agent_of, target_of
from agentls.mcp_server.registration import tool_of
from agentls.mcp_server.results import ParallelOutcome, parallel_result
from agentls.mcp_server.toolbox import AgentArg, FileArg, GoalArg, LinesArg, Toolbox


class DelegateTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentArg
    goal: GoalArg
    file: FileArg
    lines: LinesArg = None
    budget: BudgetArg = None


TasksArg = Annotated[
    list[DelegateTask],
    Field(min_length=1, max_length=64, description="the delegations to run at once"),
]
MaxParallelArg = Annotated[
    int | None, Field(ge=1, le=64, description="runs in flight at once; default: 8")
]


def delegate_parallel_tool(box: Toolbox) -> Tool:
    async def delegate_parallel(
        tasks: TasksArg, ctx: Context, max_parallel: MaxParallelArg = None
    ) -> Annotated[CallToolResult, ParallelOutcome]:
        """Run several delegations at once; results come back in task order, each with its status.

        One task's failure never stops the others; cancelling the call cancels every run.
        """
        telemetry.continue_trace(ctx.request_context.meta)  # a client's W3C traceparent
        prepared = [await _prepared(box, i, task) for i, task in enumerate(tasks)]
        work = _run(box, ctx, prepared, max_parallel)
        return await box.cancels.guarded(
            ctx, "delegate_parallel", [t.run_id for t in prepared], work
        )

    return tool_of(
        delegate_parallel,
        title="Delegate to several agents at once",
        read_only=False,
        open_world=True,
    )


async def _prepared(box: Toolbox, i: int, task: DelegateTask) -> ParallelTask:
    """One task checked and turned into a run; errors name it (`tasks[1].file: ...`)."""
    prefix = f"tasks[{i}]."
    definition = agent_of(box.runtime.registry, task.agent, f"{prefix}agent")
    if not task.goal.strip():
        raise ArgumentError(f"{prefix}goal", "empty; say what the agent should do")
    target = await target_of(box.workspace, task.file, task.lines, prefix)
    budget = await box.budget_for(task.budget, definition)
    return ParallelTask(agent=definition, goal=task.goal, target=target, budget=budget)


async def _run(
    box: Toolbox, ctx: Context, prepared: list[ParallelTask], max_parallel: int | None
) -> CallToolResult:
    started = time.monotonic()
    async with box.progress(ctx, expected_runs=len(prepared)) as listener:
        group = await run_parallel(
            box.runtime, prepared, max_parallel=max_parallel, listener=listener, **box.run_options()
        )
    outcomes = await asyncio.to_thread(lambda: [box.outcome(r) for r in group.results])
    return parallel_result(outcomes, (time.monotonic() - started) * 1000.0)
