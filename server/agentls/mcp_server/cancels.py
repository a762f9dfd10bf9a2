"""Why a tool call's runs were cancelled: the host's own reason, a closed connection, a stopped server.

The MCP SDK cancels a tool's handler the same way whatever happened, so each call runs its work in
a task of its own and, when the handler is cancelled, this module finds out why before it cancels
the runs with that reason (the audit trail records it, the server logs it):

- the host sent `notifications/cancelled`: its `reason` ("timed out after 60s", "user cancelled")
  arrives in that notification, read by `middleware` a moment after the cancel itself;
- the connection closed (stdin ended, the HTTP session went away): no notification;
- the server is stopping (SIGTERM, Ctrl-C): `agentls mcp-server` cancels every run with that
  reason first, and the first reason a run gets is the one it keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentls.core.runtime import AgentRuntime
from agentls.mcp_server.sdk_compat import cancel_requested

log = logging.getLogger(__name__)

T = TypeVar("T")

# The longest wait for a host's reason after its cancel: the notification carrying it is already
# being handled when the call sees the cancel, so this bounds a host that sent something odd.
HOST_REASON_WAIT = 2.0

HOST_CLOSED = "the MCP host closed the connection while the call ran"


def stopped_by(signal_name: str) -> str:
    return f"agentls mcp-server was stopped ({signal_name})"


def host_cancelled(said: str | None) -> str:
    """The reason a run records when its host cancelled the call, saying `said`."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", said or "").strip()[:200]
    if not text:
        return "cancelled by the MCP host (it gave no reason)"
    if re.search(r"time[ds]?[ _-]?out", text, re.IGNORECASE):
        return (
            f"the MCP host stopped waiting ({text}): its tool-call timeout is shorter than this "
            "run took; raise it (docs/mcp.md, Host timeouts)"
        )
    return f"cancelled by the MCP host ({text})"


@dataclass
class _Call:
    tool: str
    run_ids: Sequence[str]
    host_reason: str | None = None
    heard: asyncio.Event = field(default_factory=asyncio.Event)


def _key(headers: Mapping[str, str] | None, request_id: object) -> tuple[str | None, str]:
    """A request, told apart across the HTTP sessions a server holds (one stdio connection)."""
    session = headers.get("mcp-session-id") if headers is not None else None
    return session, str(request_id)


class CallCancels:
    """The tool calls in flight of one server, and the reasons their runs are cancelled for."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self.runtime = runtime
        self.stopping: str | None = None
        self._calls: dict[tuple[str | None, str], _Call] = {}
        self._cancelling: set[asyncio.Task[None]] = set()

    def stop(self, reason: str) -> None:
        """The server is stopping: cancel every run for `reason` (the calls end with them)."""
        self.stopping = self.stopping or reason
        self.runtime.cancel(reason=self.stopping)

    async def middleware(self, ctx: Any, call_next: Any) -> Any:
        """SDK middleware (every inbound message): note the reason of a `notifications/cancelled`."""
        if ctx.method == "notifications/cancelled" and isinstance(ctx.params, Mapping):
            headers = getattr(ctx.request, "headers", None)
            call = self._calls.get(_key(headers, ctx.params.get("requestId")))
            if call is not None:
                reason = ctx.params.get("reason")
                call.host_reason = reason if isinstance(reason, str) else None
                call.heard.set()
        return await call_next(ctx)

    async def guarded(
        self, ctx: Any, tool: str, run_ids: Sequence[str], work: Coroutine[Any, Any, T]
    ) -> T:
        """Run `work` (which starts the runs `run_ids`); a cancel of the call cancels them with
        the reason it had."""
        key = _key(ctx.headers, ctx.request_id)
        call = self._calls[key] = _Call(tool, run_ids)
        task = asyncio.ensure_future(work)
        handed_over = False
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():  # the cancel finds out why, then forgets the call
                self._start(self._cancel(key, call, task, by_host=cancel_requested(ctx)))
                handed_over = True
            raise
        finally:
            if not handed_over:
                self._calls.pop(key, None)

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)

    async def _cancel(
        self, key: tuple[str | None, str], call: _Call, work: asyncio.Future[Any], by_host: bool
    ) -> None:
        try:
            if by_host and self.stopping is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.heard.wait(), HOST_REASON_WAIT)
            reason = self.stopping or (host_cancelled(call.host_reason) if by_host else HOST_CLOSED)
            cancelled = [rid for rid in call.run_ids if self.runtime.cancel(rid, reason)]
            work.cancel()
            await asyncio.wait([work])  # the runs record their end
            if not work.cancelled() and work.exception() is not None:
                log.debug("%s ended with %r after its cancel", call.tool, work.exception())
            if cancelled:
                ids = ", ".join(rid[:8] for rid in cancelled)
                log.warning("%s call cancelled, and its runs (%s): %s", call.tool, ids, reason)
        finally:
            self._calls.pop(key, None)
