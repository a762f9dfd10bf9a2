"""shutdown and exit: stop every run cleanly before answering, then answer nothing but `exit`.

On `shutdown` the server cancels every run, waits for each to commit what it spent and record
itself cancelled, closes the ledger, the audit store and the model clients, and only then answers.
From the moment `shutdown` arrives, other requests get InvalidRequest (the LSP spec's answer after
shutdown) instead of pygls' silence, and so does a second `shutdown`. `exit` without `shutdown`
(and the editor going away) stops the runs the same way before the process ends; after `exit`
without `shutdown` the process ends with status 1, as the LSP spec says (pygls computes that
status, then swallows its own SystemExit, so the server's `exit_code` carries it to `main`).

pygls cancels the requests still pending after our handler by iterating its table of request
futures, whose done-callbacks remove entries from that very table ("dictionary changed size during
iteration"); cancelling them here first, from a snapshot, leaves it nothing to trip on.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future as ThreadFuture
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidRequest

from agentls.lsp.protocol import AgentProtocol
from agentls.lsp.pygls_compat import request_futures, send_error

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

log = logging.getLogger("agentls.lsp")

SHUT_DOWN_MESSAGE = "agentls is shut down: it answers only `exit` now"


class Lifecycle:
    """The server's stop sequence, run once whichever of shutdown, exit or EOF comes first."""

    def __init__(self, server: AgentLanguageServer) -> None:
        self.server = server
        self.shutting_down = False
        self.shutdown_requested = False
        self._stopping: asyncio.Task[None] | None = None

    async def stop_engine(self) -> None:
        """Cancel every run, let each record its end, close stores and model clients (once)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_engine())
        await asyncio.shield(self._stopping)

    async def _stop_engine(self) -> None:
        runtimes = self.server.folders.runtimes()
        if runtimes:
            await asyncio.gather(*(runtime.aclose() for runtime in runtimes))

    async def on_shutdown(self, *args: Any) -> None:
        self.shutting_down = True
        self.shutdown_requested = True
        await self.stop_engine()
        self._cancel_pending_requests()

    def on_exit(self, *args: Any) -> None:
        """Cancel what still runs; the runs record their end as the event loop winds down.

        Synchronous on purpose: pygls exits before it reads stdin again only when the exit
        handler returns at once (an awaiting one leaves a reader thread blocked forever).
        """
        self.shutting_down = True
        self.server.exit_code = 0 if self.shutdown_requested else 1
        protocol = self.server.protocol
        if protocol.writer is not None:
            # pygls closes the output next; what the runs still report as they end is dropped.
            protocol.writer = _ClosingWriter(protocol.writer)
        if self._stopping is None:
            for runtime in self.server.folders.runtimes():
                runtime.cancel()

    def _cancel_pending_requests(self) -> None:
        protocol = self.server.protocol
        current = protocol.msg_id
        this_handler = asyncio.current_task()  # pygls files it there too, under a made-up id
        futures = request_futures(protocol)
        for msg_id, future in list(futures.items()):
            if msg_id != current and future is not this_handler and not future.done():
                future.cancel()
        # Thread futures run their callbacks (which pop the table) inside cancel(); asyncio ones
        # later. Either way, what remains for pygls' own loop is already done.
        for msg_id, future in list(futures.items()):
            if msg_id != current and isinstance(future, ThreadFuture) and future.done():
                futures.pop(msg_id, None)

    def refuse_after_shutdown(self, message: Any) -> bool:
        """Answer a request that arrives after `shutdown` with InvalidRequest; True if handled."""
        if not self.shutting_down:
            return False
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        if method is None or method == types.EXIT:
            return False  # responses to our requests and `exit` go through
        if msg_id is not None:
            error = JsonRpcInvalidRequest(f"{SHUT_DOWN_MESSAGE}; {method} was not run")
            send_error(self.server.protocol, msg_id, error.to_response_error())
        return True


class _ClosingWriter:
    """The server's writer, made to drop writes once closed instead of raising on each."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._closed = False

    def write(self, data: bytes) -> Any:
        if not self._closed:
            return self._inner.write(data)
        return None

    def close(self) -> Any:
        self._closed = True
        return self._inner.close()


def register(server: AgentLanguageServer) -> Lifecycle:
    lifecycle = Lifecycle(server)
    protocol = server.protocol
    if isinstance(protocol, AgentProtocol):
        protocol.refuse = lifecycle.refuse_after_shutdown

    @server.feature(types.SHUTDOWN)
    async def on_shutdown(ls: AgentLanguageServer, *args: Any) -> None:
        await lifecycle.on_shutdown()

    @server.feature(types.EXIT)
    def on_exit(ls: AgentLanguageServer, *args: Any) -> None:
        lifecycle.on_exit()

    return lifecycle
