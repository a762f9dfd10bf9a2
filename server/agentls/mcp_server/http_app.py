"""The ASGI app of `agentls mcp-server --http`: the SDK's Streamable HTTP app behind agentls's guard.

In order: the Host/Origin and bearer-token checks (mcp_server/http_guard.py), the memory bound on open
sessions (mcp_server/http_sessions.py), then the SDK's app at /mcp. A request refused by the guard never
reaches the SDK, so it opens no session and starts no run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentls.mcp_server.http_guard import RequestGuard, allowed_hosts
from agentls.mcp_server.http_sessions import MAX_SESSIONS, SessionBound

if TYPE_CHECKING:
    from mcp.server import MCPServer


def http_app(
    server: MCPServer, host: str, token: str, max_sessions: int = MAX_SESSIONS
) -> RequestGuard:
    """The app to serve for `server` bound to `host`; requests must carry `token`."""
    # The SDK's own session cap stays as a backstop at the same count; SessionBound keeps below it.
    sdk_app = server.streamable_http_app(host=host, max_sessions=max_sessions)
    return RequestGuard(SessionBound(sdk_app, max_sessions), allowed_hosts(host), token)
