"""The agentls MCP server: list_agents, delegate, delegate_parallel, create_agent and budget.

Any MCP host (Claude Code, Codex, VS Code, another agentls) hands work to agentls agents here and
gets the engine's guarantees with it: hard token budgets, the audit trail, cancellation. The
server never writes a file: proposed edits come back as a unified diff. Each tool lives in its
own module (`tool_*.py`); `registration.py` says how a tool is presented to hosts.

A server started by a delegating run (meta-orchestration) knows its lineage: the run ids above it,
root first. Its runs are children of the last one, sit one level deeper, are charged to every
ancestor's run budget and get at most what those have left. Past the maximum depth it offers no
tool that starts a run.
"""

from __future__ import annotations

from mcp.server import MCPServer

from agentls import __version__
from agentls.core.runtime import AgentRuntime
from agentls.mcp_server import quiet_errors
from agentls.mcp_server.cancels import CallCancels
from agentls.mcp_server.progress import HEARTBEAT_SECONDS
from agentls.mcp_server.tool_budget import budget_tool
from agentls.mcp_server.tool_create_agent import create_agent_tool
from agentls.mcp_server.tool_delegate import delegate_tool
from agentls.mcp_server.tool_delegate_parallel import delegate_parallel_tool
from agentls.mcp_server.tool_list_agents import list_agents_tool
from agentls.mcp_server.toolbox import Lineage, Toolbox

__all__ = ["RUN_TOOLS", "Lineage", "build_server"]

# The tools that start runs; a server past the maximum depth does not offer them.
RUN_TOOLS = ("delegate", "delegate_parallel", "create_agent")


def build_server(
    runtime: AgentRuntime,
    lineage: Lineage | None = None,
    *,
    allow_edit_tools: bool = False,
    cancels: CallCancels | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> MCPServer:
    """An MCP server over `runtime`; the caller runs it (stdio or HTTP) and closes the runtime.

    `cancels` is how the caller stops the runs when it stops the server (with the reason);
    `heartbeat_seconds` is the longest silence of a tool call in flight (progress.py).
    """
    cancels = cancels or CallCancels(runtime)
    box = Toolbox(
        runtime,
        lineage or Lineage(),
        cancels,
        allow_edit_tools=allow_edit_tools,
        heartbeat=heartbeat_seconds,
    )
    tools = [list_agents_tool(box), budget_tool(box)]
    if box.can_run:
        tools += [delegate_tool(box), delegate_parallel_tool(box), create_agent_tool(box)]
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
        tools=tools,
        middleware=[cancels.middleware],
    )
    quiet_errors.install()
    return server
