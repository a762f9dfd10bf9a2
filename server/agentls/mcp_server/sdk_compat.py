"""The MCP SDK's private names this adapter uses, in one place (each is exercised by a test).

mcp 2.3 sets a request's `cancel_requested` event before it cancels the handler for a
`notifications/cancelled`, but offers it only on the low-level context; a tool's `Context` reaches
it through its session's request channel. With it, a cancelled tool call can tell a host's
cancel (which says why, in the notification) from a connection that closed.
"""

from __future__ import annotations

from typing import Any


def cancel_requested(ctx: Any) -> bool:
    """Whether the host sent `notifications/cancelled` for the request `ctx` serves."""
    session = getattr(ctx.request_context, "session", None)
    channel = getattr(session, "_request_outbound", None)
    event = getattr(channel, "cancel_requested", None)
    return bool(event is not None and event.is_set())
