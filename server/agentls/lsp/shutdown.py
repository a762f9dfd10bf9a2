"""shutdown: end the MCP server processes agents used before the editor's `exit` ends ours.

Runs in flight are cancelled by pygls with their requests; the ledger and audit store stay open
until the process ends, so the runs can still record how they ended.
"""

from __future__ import annotations

from lsprotocol import types

from agentls.lsp.server import AgentLanguageServer


def register(server: AgentLanguageServer) -> None:
    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: AgentLanguageServer, params: None) -> None:
        if not ls.has_runtime:
            return
        close_tools = getattr(ls.runtime.extra_tools, "aclose", None)
        if close_tools is not None:
            await close_tools()
