"""The `budget` tool: tokens used and left (read-only)."""

from __future__ import annotations

import asyncio

from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from agentls.core.budget import BudgetScopeSnapshot, BudgetSnapshot
from agentls.mcp_server.registration import tool_of
from agentls.mcp_server.toolbox import Toolbox


class BudgetReport(BaseModel):
    workspace: BudgetSnapshot
    delegating_run: BudgetScopeSnapshot | None = Field(
        default=None, description="the run that started this server, when one did"
    )
    depth: int
    max_depth: int


def budget_tool(box: Toolbox) -> Tool:
    async def budget() -> BudgetReport:
        """Tokens used and left: the workspace total, per agent, and the delegating run's."""

        def read() -> BudgetReport:
            parent = box.lineage.parent
            ledger = box.runtime.budgeter
            return BudgetReport(
                workspace=ledger.snapshot(),
                delegating_run=ledger.run_snapshot(parent) if parent else None,
                depth=box.lineage.depth,
                max_depth=box.runtime.config.max_depth,
            )

        return await asyncio.to_thread(read)

    return tool_of(budget, title="Token budget", read_only=True, open_world=False)
