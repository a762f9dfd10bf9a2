"""Delegation to a child agentls over MCP: the tools of an orchestrating run.

A run whose definition names the reserved MCP server `agentls` (`mcp: {agentls: [delegate, ...]}`)
gets its own child `agentls mcp-server` process on stdio, started when the run starts and closed
(its process group killed if need be) when the run ends, whatever the end. The child learns its
place in the tree from `--lineage` (the run ids above it, root first): its runs are this run's
children, one level deeper, charged to every ancestor's run budget in the shared ledger, and
recorded in the shared audit trail with this run as their parent. The runtime offers these tools
only below the maximum depth; the child refuses to start runs past it too. The child holds the
user's key and settings, so it starts outside the workspace with `-P`: nothing a repository
ships (an `agentls/` package, `sitecustomize.py`) can be imported in it.

A call to the child is bounded in time (a read timeout: the child must report progress or answer
at least every `mcpCallTimeout` seconds; DELEGATION_TIME_LIMIT in all) and in size (one message,
as for every stdio MCP server); what the child reports shows in this run's progress.

The child's tools appear to the model as `mcp__agentls__<tool>`. Edits the child's agents propose
come back in the structured result and become this run's proposed edits, never written.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from agentls.core import telemetry
from agentls.core.child_workdir import SAFE_PATH_FLAG, outside_workspace
from agentls.core.llm import ToolSpec
from agentls.core.mcp_client.config import CHILD_SERVER, MODEL_ENV
from agentls.core.runtime import RunFailed, RunScope
from agentls.core.target import ProposedEdit
from agentls.core.tools.base import ProgressReport, Tool, ToolResult, truncate

if TYPE_CHECKING:
    from mcp import Client, StdioServerParameters
    from mcp_types import CallToolResult
    from mcp_types import Tool as McpTool

TOOL_PREFIX = f"mcp__{CHILD_SERVER}__"
# What a delegating parent hands its child: settings as JSON (see cli/mcp_server.py reads it).
SETTINGS_ENV = "AGENTLS_SETTINGS"
# One message of the child, as for every stdio MCP server (core/mcp_client/stdio.py).
MAX_MESSAGE_CHARS = 16 * 1024 * 1024
# A call to the child fails when the child sends nothing (no progress, no result) for this long;
# its runs report every step, so only a stuck child or a model turn this slow is cut.
DEFAULT_READ_TIMEOUT = 60.0
# What one delegation (a child run and every run below it) may take in all.
DELEGATION_TIME_LIMIT = 1800.0


@dataclass
class ChildFault:
    """Why agentls itself ended the connection to a run's child, when it did."""

    max_message_chars: int
    reason: str | None = None

    def oversize(self, size: int) -> None:
        self.reason = (
            f"sent a message of more than {self.max_message_chars:,} characters, so agentls "
            "closed the connection (no more delegation in this run)"
        )


@dataclass
class ChildTool:
    """One tool of the child agentls, called over its MCP session.

    A call asks for progress and is bounded twice: the child must say something (a progress
    notification or the result) at least every `read_timeout` seconds, and the whole call may
    last `time_limit`. Either way the call is cancelled, which cancels the child's runs.
    """

    client: Client
    tool: McpTool
    read_timeout: float = DEFAULT_READ_TIMEOUT
    fault: ChildFault = field(default_factory=lambda: ChildFault(MAX_MESSAGE_CHARS))
    time_limit: float = DELEGATION_TIME_LIMIT
    # Bounded by the two limits above, not by the turn loop's default tool limit.
    call_time_limit: float | None = None

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=TOOL_PREFIX + self.tool.name,
            description=self.tool.description or self.tool.name,
            parameters=self.tool.input_schema,
        )

    @property
    def read_only(self) -> bool:
        return True  # the child proposes edits; nothing is written

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        return await self.call_with_progress(arguments, lambda message: None)

    async def call_with_progress(
        self, arguments: dict[str, Any], report: ProgressReport
    ) -> ToolResult:
        from mcp.shared.exceptions import MCPError

        loop = asyncio.get_running_loop()
        ends = loop.time() + self.time_limit

        def deadline() -> float:
            return min(loop.time() + self.read_timeout, ends)

        name = self.tool.name
        try:
            async with asyncio.timeout(deadline()) as timer:

                async def on_progress(
                    progress: float, total: float | None, message: str | None
                ) -> None:
                    timer.reschedule(deadline())  # the child is alive and working
                    if message:
                        report(message)

                result = await self.client.call_tool(
                    name, arguments, progress_callback=on_progress, meta=telemetry.request_meta()
                )
        except TimeoutError:
            if loop.time() >= ends:
                why = (
                    f"did not finish {name} within {self.time_limit:g} s (the time limit of one "
                    "delegation)"
                )
            else:
                why = (
                    f"sent nothing for {self.read_timeout:g} s during {name} (the read timeout, "
                    "setting agentls.mcpCallTimeout)"
                )
            return ToolResult.error(
                f"the child agentls {why}; the call was cancelled, and with it the child's runs "
                "(recorded as cancelled in the audit trail)"
            )
        except MCPError as exc:
            if self.fault.reason is not None:
                return ToolResult.error(
                    f"the child agentls {self.fault.reason} during {name}. Its runs are "
                    "recorded in the audit trail"
                )
            return ToolResult.error(
                f"the child agentls failed during {name} ({exc.error.message}); it may "
                "have crashed or been stopped. Its runs are recorded in the audit trail"
            )
        return _tool_result(result)


def _tool_result(result: CallToolResult) -> ToolResult:
    from mcp_types import TextContent

    text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
    edits = _edits_in(result.structured_content) if not result.is_error else []
    return ToolResult(content=truncate(text), is_error=result.is_error, edits=edits)


def _edits_in(structured: dict[str, Any] | None) -> list[ProposedEdit]:
    """The child's proposed edits: a delegate result's `edits`, or each parallel result's."""
    if not structured:
        return []
    runs = structured.get("results")
    if not isinstance(runs, list):
        runs = [structured.get("run", structured)]
    edits: list[ProposedEdit] = []
    for run in runs:
        for raw in run.get("edits", []) if isinstance(run, dict) else []:
            with contextlib.suppress(ValidationError):
                edits.append(ProposedEdit.model_validate(raw))
    return edits


@dataclass
class ChildAgentls:
    """The runtime's delegation tool source: one child agentls per orchestrating run."""

    workspace: Path
    settings_json: str
    # Seconds the child may stay silent during a call (the MCP call timeout, mcpCallTimeout).
    read_timeout: float = DEFAULT_READ_TIMEOUT
    # Characters one message of the child may hold (the bound of every stdio MCP server).
    max_message_chars: int = MAX_MESSAGE_CHARS
    # Seconds one call to the child may take in all, however much it reports.
    time_limit: float = DELEGATION_TIME_LIMIT

    def __call__(self, scope: RunScope) -> contextlib.AbstractAsyncContextManager[dict[str, Tool]]:
        return self._session(scope)

    def parameters(self, scope: RunScope, cwd: Path | None = None) -> StdioServerParameters:
        """How the child starts. It holds the user's key and settings, so nothing of the
        workspace may be importable in it: `-P` and a working directory outside the workspace
        (core/child_workdir.py); the workspace is named by `--workspace`."""
        from mcp import StdioServerParameters

        lineage = ",".join((*scope.ancestor_run_ids, scope.run_id))
        env = {k: os.environ[k] for k in MODEL_ENV if k in os.environ}
        env[SETTINGS_ENV] = self.settings_json
        env.update(telemetry.child_env())  # OTEL_* and TRACEPARENT: the child joins this trace
        return StdioServerParameters(
            command=sys.executable,
            args=[
                SAFE_PATH_FLAG,
                "-m",
                "agentls",
                "--workspace",
                str(self.workspace),
                "mcp-server",
                "--lineage",
                lineage,
            ],
            env=env,
            cwd=str(cwd if cwd is not None else outside_workspace(self.workspace)),
        )

    @contextlib.asynccontextmanager
    async def _session(self, scope: RunScope) -> AsyncIterator[dict[str, Tool]]:
        allowed = scope.definition.mcp.get(CHILD_SERVER)
        if not allowed:
            yield {}
            return
        # The SDK takes a second to import on a busy machine: not on the event loop.
        await asyncio.to_thread(importlib.import_module, "agentls.core.mcp_client.stdio")
        cwd = await asyncio.to_thread(outside_workspace, self.workspace)
        from mcp import Client
        from mcp.shared.exceptions import MCPError

        from agentls.core.mcp_client.stdio import bounded_stdio_client

        # The run's own end (an answer, a budget stop, a cancel) is kept out of the client's task
        # group, which would wrap it in an ExceptionGroup; it is raised again once the child is closed.
        ended: BaseException | None = None
        started = False
        fault = ChildFault(self.max_message_chars)
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    # On exit the SDK closes stdin, waits 2 s, then kills the child's process group.
                    # One message over the size bound ends the connection, as for any MCP server.
                    transport = bounded_stdio_client(
                        self.parameters(scope, cwd),
                        _stderr(),
                        max_line_chars=self.max_message_chars,
                        on_oversize=fault.oversize,
                    )
                    client = await stack.enter_async_context(Client(transport))
                    listed = await client.list_tools()
                    started = True
                except (OSError, MCPError) as exc:
                    raise RunFailed(
                        f"could not start the child agentls to delegate to: {fault.reason or exc}"
                    ) from exc
                try:
                    yield {
                        TOOL_PREFIX + t.name: ChildTool(
                            client, t, self.read_timeout, fault, self.time_limit
                        )
                        for t in listed.tools
                        if "*" in allowed or t.name in allowed
                    }
                except BaseException as exc:
                    ended = exc
        except BaseExceptionGroup as group:
            if ended is None:
                cause = _leaf(group)
                if isinstance(cause, RunFailed):
                    raise cause from group
                if not started:  # the SDK raises a child's exit during its start as a group
                    raise RunFailed(
                        f"could not start the child agentls to delegate to: {fault.reason or cause}"
                        "; its own message, if it printed one, is in this process's stderr log"
                    ) from group
                raise RunFailed(
                    f"the child agentls to delegate to failed ({type(cause).__name__}: {cause}); "
                    "its own message, if it printed one, is in this process's stderr log"
                ) from group
        if ended is not None:
            raise ended


def _stderr() -> TextIO:
    """Where the child's stderr goes: ours, or the process's own when ours is no real file (a
    capturing wrapper has no descriptor to hand a child)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
