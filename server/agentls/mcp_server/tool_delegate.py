"""The `delegate` tool: one agent on a file (or a line range of it), to its end."""

from __future__ import annotations

import asyncio
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult

from agentls.core import telemetry
from agentls.core.events import new_id
from agentls.mcp_server.arguments import ArgumentError, BudgetArg, agent_of, target_of
from agentls.mcp_server.registration import tool_of
from agentls.mcp_server.results import DelegateOutcome, delegate_result
from agentls.mcp_server.toolbox import AgentArg, FileArg, GoalArg, LinesArg, Toolbox


def delegate_tool(box: Toolbox) -> Tool:
    async def delegate(
        agent: AgentArg,
        goal: GoalArg,
        file: FileArg,
        ctx: Context,
        lines: LinesArg = None,
        budget: BudgetArg = None,
    ) -> Annotated[CallToolResult, DelegateOutcome]:
        """Run one agent on a file (or a line range of it) to its end.

        Returns the answer, the proposed edits as a unified diff (not applied) and the token
        usage. Progress notifications follow the run, and say what it waits for during a long
        silence; cancelling the call cancels the run.
        """
        telemetry.continue_trace(ctx.request_context.meta)  # a client's W3C traceparent
        run_id = new_id()
        work = _delegate(box, ctx, run_id, agent, goal, file, lines, budget)
        return await box.cancels.guarded(ctx, "delegate", [run_id], work)

    return tool_of(delegate, title="Delegate to an agent", read_only=False, open_world=True)


async def _delegate(
    box: Toolbox,
    ctx: Context,
    run_id: str,
    agent: str,
    goal: str,
    file: str,
    lines: str | None,
    budget: int | None,
) -> CallToolResult:
    definition = agent_of(box.runtime.registry, agent)
    if not goal.strip():
        raise ArgumentError("goal", "empty; say what the agent should do")
    target = await target_of(box.workspace, file, lines)
    run_budget = await box.budget_for(budget, definition)
    async with box.progress(ctx) as listener:
        result = await box.runtime.delegate(
            definition,
            goal,
            target,
            budget=run_budget,
            run_id=run_id,
            listener=listener,
            **box.run_options(),
        )
    return delegate_result(await asyncio.to_thread(box.outcome, result))
