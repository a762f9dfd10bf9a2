"""What every agentls MCP tool works with: the runtime, the server's place in a delegation tree,
the arguments the tools share, budget clamping, progress and cancel reasons."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from agentls.core.definitions import AgentDefinition
from agentls.core.events import RunEvent
from agentls.core.runtime import AgentRuntime, RunResult
from agentls.mcp_server.cancels import CallCancels
from agentls.mcp_server.progress import HEARTBEAT_SECONDS, progress_reporter
from agentls.mcp_server.results import DelegateOutcome, outcome_of

# The arguments several tools take (and `arguments.BudgetArg`). Their descriptions are what a
# host's model reads.
AgentArg = Annotated[str, Field(description="agent name, as list_agents shows it")]
GoalArg = Annotated[str, Field(description="what the agent should do")]
FileArg = Annotated[str, Field(description="the file to work on, relative to the workspace root")]
LinesArg = Annotated[
    str | None,
    Field(description="line range A-B of the file, 1-based and inclusive; default: the whole file"),
]


@dataclass(frozen=True)
class Lineage:
    """The runs above this server's runs, root first; empty for a server a user started."""

    ancestors: tuple[str, ...] = ()

    @property
    def depth(self) -> int:
        return len(self.ancestors)

    @property
    def parent(self) -> str | None:
        return self.ancestors[-1] if self.ancestors else None


@dataclass
class Toolbox:
    runtime: AgentRuntime
    lineage: Lineage
    cancels: CallCancels
    allow_edit_tools: bool = False
    heartbeat: float = HEARTBEAT_SECONDS

    @property
    def workspace(self) -> Path:
        return self.runtime.workspace

    @property
    def can_run(self) -> bool:
        """Whether runs started here sit within the maximum delegation depth."""
        return self.lineage.depth <= self.runtime.config.max_depth

    def run_options(self) -> dict[str, Any]:
        """The delegation-tree arguments every run started here gets."""
        return {
            "parent_run_id": self.lineage.parent,
            "depth": self.lineage.depth,
            "ancestor_run_ids": self.lineage.ancestors,
        }

    async def budget_for(self, requested: int | None, definition: AgentDefinition) -> int | None:
        """The run's budget: what was asked (or the agent's), at most what every ancestor has left.

        Reads the ledger off the event loop (another process may hold its lock).
        """
        wanted = requested or definition.budget or self.runtime.config.default_run_budget
        for run_id in self.lineage.ancestors:
            left = (await self.runtime.budgeter.arun_snapshot(run_id)).remaining
            if left is None:
                continue
            if left <= 0:
                raise ToolError(
                    f"no tokens left: the delegating run {run_id[:8]} has spent its budget"
                )
            wanted = left if wanted is None else min(wanted, left)
        return wanted

    def outcome(self, result: RunResult) -> DelegateOutcome:
        """Blocking (reads files for the diff, the ledger): call it off the event loop."""
        tree = self.runtime.budgeter.run_usage(result.run_id)
        return outcome_of(self.workspace, result, self.lineage.depth, tree)

    @contextlib.asynccontextmanager
    async def progress(
        self, ctx: Any, expected_runs: int = 1
    ) -> AsyncIterator[Callable[[RunEvent], None]]:
        """A listener whose events reach the host as progress notifications of this call."""
        async with progress_reporter(
            ctx.report_progress, heartbeat=self.heartbeat, expected_runs=expected_runs
        ) as listener:
            yield listener
