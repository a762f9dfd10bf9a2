"""The agentls MCP server: list_agents, delegate, delegate_parallel, create_agent and budget.

Any MCP host (Claude Code, Codex, VS Code, another agentls) hands work to agentls agents here and
gets the engine's guarantees with it: hard token budgets, the audit trail, cancellation. The
server never writes a file: proposed edits come back as a unified diff.

A server started by a delegating run (meta-orchestration) knows its lineage: the run ids above it,
root first. Its runs are children of the last one, sit one level deeper, are charged to every
ancestor's run budget and get at most what those have left. Past the maximum depth it offers no
tool that starts a run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field

from agentls import __version__
from agentls.core import telemetry
from agentls.core.budget import BudgetScopeSnapshot, BudgetSnapshot
from agentls.core.create import CREATOR, CreateAgentError
from agentls.core.create import create_agent as create_definition
from agentls.core.definitions import AgentDefinition
from agentls.core.events import RunEvent, new_id
from agentls.core.parallel import ParallelTask
from agentls.core.parallel import delegate_parallel as run_parallel
from agentls.core.runtime import AgentRuntime, RunResult
from agentls.mcp import quiet_errors
from agentls.mcp.arguments import ArgumentError, BudgetArg, agent_of, target_of
from agentls.mcp.progress import progress_reporter
from agentls.mcp.results import (
    DelegateOutcome,
    ParallelOutcome,
    delegate_result,
    outcome_of,
    parallel_result,
    summary_of,
    tool_result,
)

# The tools that start runs; a server past the maximum depth does not offer them.
RUN_TOOLS = ("delegate", "delegate_parallel", "create_agent")

AgentArg = Annotated[str, Field(description="agent name, as list_agents shows it")]
GoalArg = Annotated[str, Field(description="what the agent should do")]
FileArg = Annotated[str, Field(description="the file to work on, relative to the workspace root")]
LinesArg = Annotated[
    str | None, Field(description="line range A-B of the file (1-based, inclusive); default: all")
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


class DelegateTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentArg
    goal: GoalArg
    file: FileArg
    lines: LinesArg = None
    budget: BudgetArg = None


class AgentInfo(BaseModel):
    name: str
    description: str
    mode: str
    source: str


class AgentList(BaseModel):
    agents: list[AgentInfo]
    can_delegate: bool = Field(description="false past the maximum delegation depth")


class BudgetReport(BaseModel):
    workspace: BudgetSnapshot
    delegating_run: BudgetScopeSnapshot | None = Field(
        default=None, description="the run that started this server, when one did"
    )
    depth: int
    max_depth: int


class CreatedAgentOut(BaseModel):
    definition: dict[str, Any]
    saved_to: str | None
    run: DelegateOutcome | None


def build_server(
    runtime: AgentRuntime, lineage: Lineage = Lineage(), *, allow_edit_tools: bool = False
) -> MCPServer:
    """An MCP server over `runtime`; the caller runs it (stdio or HTTP) and closes the runtime."""
    workspace = runtime.workspace
    can_run = lineage.depth <= runtime.config.max_depth
    server = MCPServer(
        name="agentls",
        version=__version__,
        # The SDK configures the root logger at this level; INFO would log every model request.
        log_level="WARNING",
        instructions=(
            "Delegate coding work to agentls agents with a hard token budget and an audit trail. "
            "Call list_agents first; delegate returns the agent's answer and any proposed edits "
            "as a unified diff (never applied)."
        ),
    )
    quiet_errors.install()

    async def budget_for(requested: int | None, definition: AgentDefinition) -> int | None:
        """The run's budget: what was asked (or the agent's), at most what every ancestor has left.

        Reads the ledger off the event loop (another process may hold its lock).
        """
        wanted = requested or definition.budget or runtime.config.default_run_budget
        for run_id in lineage.ancestors:
            left = (await runtime.budgeter.arun_snapshot(run_id)).remaining
            if left is None:
                continue
            if left <= 0:
                raise ToolError(
                    f"no tokens left: the delegating run {run_id[:8]} has spent its budget"
                )
            wanted = left if wanted is None else min(wanted, left)
        return wanted

    def outcome(result: RunResult) -> DelegateOutcome:
        """Blocking (reads files for the diff, the ledger): call it off the event loop."""
        tree = runtime.budgeter.run_usage(result.run_id)
        return outcome_of(workspace, result, lineage.depth, tree)

    @server.tool()
    async def list_agents() -> AgentList:
        """The agents you can delegate to: name, description, mode (answer, edit or tools)."""
        return AgentList(
            agents=[AgentInfo(**a.summary()) for a in runtime.registry],
            can_delegate=can_run,
        )

    @server.tool()
    async def budget() -> BudgetReport:
        """Tokens used and left: the workspace total, per agent, and the delegating run's."""

        def read() -> BudgetReport:
            parent = lineage.parent
            return BudgetReport(
                workspace=runtime.budgeter.snapshot(),
                delegating_run=runtime.budgeter.run_snapshot(parent) if parent else None,
                depth=lineage.depth,
                max_depth=runtime.config.max_depth,
            )

        return await asyncio.to_thread(read)

    if not can_run:
        return server

    @server.tool()
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
        usage. Progress notifications follow the run; cancelling the call cancels the run.
        """
        telemetry.continue_trace(ctx.request_context.meta)  # a client's W3C traceparent
        definition = agent_of(runtime.registry, agent)
        if not goal.strip():
            raise ArgumentError("goal", "empty; say what the agent should do")
        target = await target_of(workspace, file, lines)
        run_budget = await budget_for(budget, definition)
        async with progress_reporter(ctx.report_progress) as listener:
            result = await runtime.delegate(
                definition,
                goal,
                target,
                budget=run_budget,
                parent_run_id=lineage.parent,
                depth=lineage.depth,
                ancestor_run_ids=lineage.ancestors,
                listener=listener,
            )
        return delegate_result(await asyncio.to_thread(outcome, result))

    @server.tool()
    async def delegate_parallel(
        tasks: Annotated[
            list[DelegateTask],
            Field(min_length=1, max_length=64, description="the delegations to run at once"),
        ],
        ctx: Context,
        max_parallel: Annotated[
            int | None, Field(ge=1, le=64, description="runs in flight at once (default 8)")
        ] = None,
    ) -> Annotated[CallToolResult, ParallelOutcome]:
        """Run several delegations at once; results come back in task order, each with its status.

        One task's failure never stops the others; cancelling the call cancels every run.
        """
        telemetry.continue_trace(ctx.request_context.meta)  # a client's W3C traceparent
        prepared: list[ParallelTask] = []
        for i, task in enumerate(tasks):
            prefix = f"tasks[{i}]."
            definition = agent_of(runtime.registry, task.agent, f"{prefix}agent")
            if not task.goal.strip():
                raise ArgumentError(f"{prefix}goal", "empty; say what the agent should do")
            target = await target_of(workspace, task.file, task.lines, prefix)
            prepared.append(
                ParallelTask(
                    agent=definition,
                    goal=task.goal,
                    target=target,
                    budget=await budget_for(task.budget, definition),
                )
            )
        started = time.monotonic()
        async with progress_reporter(ctx.report_progress) as listener:
            group = await run_parallel(
                runtime,
                prepared,
                max_parallel=max_parallel,
                listener=listener,
                parent_run_id=lineage.parent,
                depth=lineage.depth,
                ancestor_run_ids=lineage.ancestors,
            )
        outcomes = await asyncio.to_thread(lambda: [outcome(r) for r in group.results])
        return parallel_result(outcomes, (time.monotonic() - started) * 1000.0)

    @server.tool()
    async def create_agent(
        prompt: Annotated[
            str, Field(description="what the agent should be, e.g. 'a reviewer for SQL injection'")
        ],
        ctx: Context,
        file: Annotated[
            str | None,
            Field(description="a file (workspace-relative) to run the new agent on at once"),
        ] = None,
        lines: LinesArg = None,
        save: Annotated[
            bool, Field(description="save it to .agentls/agents/NAME.yaml in the workspace")
        ] = False,
        budget: BudgetArg = None,
    ) -> Annotated[CallToolResult, CreatedAgentOut]:
        """Have the model write a new agent from a sentence, then run it on the prompt.

        The definition is validated (read-only tools unless the settings allow more); with
        `save` it is written to the workspace and stays available.
        """
        telemetry.continue_trace(ctx.request_context.meta)  # a client's W3C traceparent
        if not prompt.strip():
            raise ArgumentError("prompt", "empty; describe the agent you want")
        if lines is not None and file is None:
            raise ArgumentError("lines", "needs a file to narrow")
        target = await target_of(workspace, file, lines) if file is not None else None
        async with progress_reporter(ctx.report_progress) as listener:
            creation_id = new_id()

            def creation_events(event: RunEvent) -> None:
                if event.run_id == creation_id:
                    listener(event)

            unsubscribe = runtime.subscribe(creation_events)
            try:
                created = await create_definition(
                    runtime,
                    prompt,
                    selection=target,
                    budget=await budget_for(budget, CREATOR),
                    save=save,
                    allow_edit_tools=allow_edit_tools,
                    parent_run_id=lineage.parent,
                    depth=lineage.depth,
                    ancestor_run_ids=lineage.ancestors,
                    run_id=creation_id,
                )
            except CreateAgentError as exc:
                raise ToolError(f"prompt: {exc}") from None
            except FileExistsError as exc:
                raise ArgumentError(
                    "save", f"{exc.filename} already exists; remove it or ask for another name"
                ) from None
            finally:
                unsubscribe()
            result = await runtime.delegate(
                created.definition,
                prompt,
                target,
                budget=await budget_for(budget, created.definition),
                parent_run_id=lineage.parent,
                depth=lineage.depth,
                ancestor_run_ids=lineage.ancestors,
                listener=listener,
            )
        run = await asyncio.to_thread(outcome, result)
        out = CreatedAgentOut(
            definition=created.definition.model_dump(mode="json", exclude_defaults=True),
            saved_to=str(created.saved_to) if created.saved_to else None,
            run=run,
        )
        name = created.definition.name
        where = f", saved to {created.saved_to}" if created.saved_to else " (in memory)"
        text = f"created agent {name!r}{where}\n\n{summary_of(run)}"
        return tool_result(out, text, failed=run.status != "finished")

    return server
