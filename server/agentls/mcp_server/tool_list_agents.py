"""The `list_agents` tool: the agents a host can delegate to (read-only)."""

from __future__ import annotations

from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from agentls.mcp_server.registration import tool_of
from agentls.mcp_server.toolbox import Toolbox


class AgentInfo(BaseModel):
    name: str
    description: str
    mode: str
    source: str


class AgentList(BaseModel):
    agents: list[AgentInfo]
    can_delegate: bool = Field(description="false past the maximum delegation depth")


def list_agents_tool(box: Toolbox) -> Tool:
    async def list_agents() -> AgentList:
        """The agents you can delegate to: name, description, mode (answer, edit or tools)."""
        return AgentList(
            agents=[AgentInfo(**a.summary()) for a in box.runtime.registry],
            can_delegate=box.can_run,
        )

    return tool_of(list_agents, title="List agentls agents", read_only=True, open_world=False)
