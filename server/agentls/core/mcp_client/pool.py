"""One MCP session per configured server, shared by every run of the workspace.

A server starts on first use; its tool list is read once per session. A call is bounded by the
per-call timeout (the SDK then cancels the server's tool). A stdio server's stderr is read into a
small ring buffer: it is the tail shown when the server fails, and its end tells that the process
exited, so the next call starts a fresh one. The only root ever offered is the workspace.
The user's servers start outside the workspace (core/child_workdir.py); those of a trusted
workspace's own files start in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentls import __version__
from agentls.core.child_workdir import outside_workspace
from agentls.core.mcp_client.config import DEFAULT_CALL_TIMEOUT, ConfiguredServer, McpConfig
from agentls.core.mcp_client.rendering import render_result
from agentls.core.runtime import RunFailed
from agentls.core.tools.base import ProgressReport, ToolResult

if TYPE_CHECKING:
    from mcp import Client

log = logging.getLogger("agentls.mcp")

DEFAULT_START_TIMEOUT = 30.0
STDERR_TAIL_BYTES = 4_000
MAX_MESSAGE_CHARS = 16 * 1024 * 1024  # one JSON-RPC message from a stdio server
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one response body (or server-sent event) from a url server
MAX_TOOL_PAGES = 50
MAX_TOOLS = 1_000


class McpServerError(RunFailed):
    """A server that cannot be used (not configured, did not start); the message says which."""


@dataclass(frozen=True)
class ServerTool:
    """What a server says about one of its tools, as far as agents need it."""

    name: str
    description: str | None
    input_schema: dict[str, Any]


class _StderrTail(asyncio.Protocol):
    """Keeps the last bytes a server wrote to stderr; `exited` is set at end of file."""

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.exited = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data[-STDERR_TAIL_BYTES:])
        self.size += len(self.chunks[-1])
        while self.size > STDERR_TAIL_BYTES and len(self.chunks) > 1:
            self.size -= len(self.chunks.popleft())

    def connection_lost(self, exc: Exception | None) -> None:
        self.exited.set()

    def text(self) -> str:
        data = b"".join(self.chunks)[-STDERR_TAIL_BYTES:]
        return data.decode("utf-8", errors="replace").strip()


class _Session:
    """One live connection: a task holds the SDK client open until `close()`."""

    def __init__(self, server: ConfiguredServer, workspace: Path) -> None:
        self.server = server
        self.workspace = workspace
        self.client: Client | None = None
        self.tools: dict[str, ServerTool] = {}
        self.stderr = _StderrTail()
        self.roots_requested = asyncio.Event()
        self.broken = False
        self.fault: str | None = None  # why agentls itself ended the connection
        self.noise_lines = 0  # lines of stdout that were not JSON-RPC
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stderr_pipe: asyncio.ReadTransport | None = None

    @property
    def usable(self) -> bool:
        return (
            self.client is not None
            and not self.broken
            and not self.stderr.exited.is_set()
            and self._task is not None
            and not self._task.done()
        )

    async def start(self, timeout: float) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(ready), name=f"agentls-mcp-{self.server.name}")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(ready)
        except TimeoutError:
            await self.close()
            raise McpServerError(
                self._failure(f"did not answer within {timeout:g} s of starting")
            ) from None
        except asyncio.CancelledError:
            await self.close()
            raise
        except McpServerError:
            await self.close()
            raise

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        from mcp import Client
        from mcp import types as mcp_types

        async def roots(context: Any) -> mcp_types.ListRootsResult:
            # Servers such as server-filesystem replace their allowed folders with the roots:
            # offering anything wider than the workspace would widen what they may touch.
            self.roots_requested.set()
            return mcp_types.ListRootsResult(
                roots=[mcp_types.Root(uri=self.workspace.as_uri(), name=self.workspace.name)]
            )

        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = await self._transport(stack)
                client = await stack.enter_async_context(
                    Client(
                        transport,
                        list_roots_callback=roots,
                        client_info=mcp_types.Implementation(name="agentls", version=__version__),
                    )
                )
                self.tools = await _list_tools(client)
                self.client = client
                ready.set_result(None)
                await self._closing.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:  # the SDK and the transport raise many kinds
            if not ready.done():
                await self._wait_for_exit()
                ready.set_exception(McpServerError(self._failure(_reason(exc))))
            else:
                log.warning(
                    "MCP server %r: connection ended: %s", self.server.name, exc, exc_info=True
                )
        finally:
            self.broken = True

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        from mcp import StdioServerParameters

        from agentls.core.mcp_client.stdio import bounded_stdio_client

        settings = self.server.settings
        if settings.url is not None:
            return await self._http_transport(stack)
        assert settings.command is not None
        read_fd, write_fd = os.pipe()
        errlog = os.fdopen(write_fd, "w")
        # Our copy of the write end closes once the child holds its own, so end of file on the
        # read end means the server process (and anything it passed stderr to) has exited.
        stack.callback(errlog.close)
        loop = asyncio.get_running_loop()
        reader = os.fdopen(read_fd, "rb", buffering=0)
        # Closed by end of file, or by close(): closing it here would drop an unread tail.
        self._stderr_pipe, _ = await loop.connect_read_pipe(lambda: self.stderr, reader)
        params = StdioServerParameters(
            command=settings.command,
            args=settings.args,
            env=settings.child_env() or None,
            cwd=await self._working_directory(),
        )
        return _ClosingParentEnd(
            bounded_stdio_client(
                params,
                errlog,
                max_line_chars=MAX_MESSAGE_CHARS,
                on_oversize=self._oversize,
                on_noise=self._noise,
            ),
            errlog,
        )

    async def _working_directory(self) -> Path:
        """The workspace for the servers its own files declare (trusted, or not loaded at all);
        outside it for the user's servers, which a repository must not be able to replace by
        shipping what they look for in their working directory (`node_modules` for npx, a
        module for `python -m`)."""
        if self.server.from_workspace:
            return self.workspace
        return await asyncio.to_thread(outside_workspace, self.workspace)

    def _noise(self, line: str) -> None:
        """A line on stdout that is not JSON-RPC: ignored, said once per connection."""
        if self.noise_lines == 0:
            shown = line if len(line) <= 200 else line[:199] + "…"
            log.warning(
                "MCP server %r printed a line that is not JSON-RPC on its stdout (ignored; a "
                "server must write only protocol messages there, logs go to stderr): %r",
                self.server.name,
                shown,
            )
        self.noise_lines += 1

    def _oversize(self, size: int) -> None:
        self.fault = (
            f"sent a message of more than {MAX_MESSAGE_CHARS:,} characters, so agentls closed "
            "the connection"
        )
        self.broken = True

    async def _http_transport(self, stack: contextlib.AsyncExitStack) -> Any:
        from mcp.client.streamable_http import streamable_http_client

        from agentls.core.mcp_client.http import bounded_http_client

        settings = self.server.settings
        assert settings.url is not None
        http = await stack.enter_async_context(
            bounded_http_client(settings.headers, MAX_MESSAGE_BYTES)
        )
        return streamable_http_client(
            settings.url, http_client=http, max_sse_event_size=MAX_MESSAGE_BYTES
        )

    async def _wait_for_exit(self) -> None:
        """Give a failed server's stderr a moment to arrive (bounded; it may not have exited)."""
        if self._stderr_pipe is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.stderr.exited.wait()

    def _failure(self, reason: str) -> str:
        s = self.server
        message = f"MCP server {s.name!r} ({s.settings.describe()}, from {s.origin}) {reason}"
        tail = self.stderr.text()
        return f"{message}; its stderr ends with:\n{tail}" if tail else message

    def call_failure(self, reason: str) -> str:
        return self._failure(reason)

    async def close(self) -> None:
        """End the session and its process (the SDK terminates it; every wait is bounded)."""
        self._closing.set()
        task = self._task
        if task is not None and not task.done():
            if self.client is None:
                task.cancel()  # still starting: nothing to close politely
            done, _ = await asyncio.wait([task], timeout=10.0)
            if not done:
                task.cancel()
                await asyncio.wait([task])
        await self._wait_for_exit()
        if self._stderr_pipe is not None:
            self._stderr_pipe.close()


class _ClosingParentEnd(contextlib.AbstractAsyncContextManager[Any]):
    """Enters stdio_client, then closes this process's copy of the child's stderr pipe."""

    def __init__(self, inner: contextlib.AbstractAsyncContextManager[Any], errlog: Any) -> None:
        self.inner = inner
        self.errlog = errlog

    async def __aenter__(self) -> Any:
        try:
            return await self.inner.__aenter__()
        finally:
            self.errlog.close()  # the child has its own copy once spawned

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self.inner.__aexit__(*exc)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    if isinstance(exc, FileNotFoundError):
        return f"did not start: {exc}"
    from mcp import MCPError

    if isinstance(exc, MCPError):
        return f"did not start: {exc.message} (MCP error {exc.code})"
    return f"did not start: {type(exc).__name__}: {exc}"


def _passing_on(report: ProgressReport) -> Any:
    """An SDK progress callback that hands each notification to `report` as one line."""

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        report(message or (f"{progress:g}/{total:g}" if total else f"{progress:g}"))

    return on_progress


def _refused_as_too_large(message: str) -> bool:
    """A url server's answer cut off at the size bound (core/mcp_client/http.py; the SDK's SSE bound)."""
    from agentls.core.mcp_client.http import OVERSIZE_NOTE

    return OVERSIZE_NOTE in message or "Server-sent event exceeded" in message


_sdk_imported = False


async def _import_sdk() -> None:
    """The SDK takes a while to import the first time: do it on a worker thread, once."""
    global _sdk_imported
    if _sdk_imported:
        return

    def load() -> None:
        import mcp.client.streamable_http  # noqa: F401

        import agentls.core.mcp_client.http
        import agentls.core.mcp_client.stdio  # noqa: F401

    await asyncio.to_thread(load)
    _sdk_imported = True


async def _list_tools(client: Client) -> dict[str, ServerTool]:
    tools: dict[str, ServerTool] = {}
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        for tool in page.tools:
            if len(tools) >= MAX_TOOLS:
                return tools
            tools[tool.name] = ServerTool(tool.name, tool.description, dict(tool.input_schema))
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


class McpPool:
    """The sessions of a workspace's configured servers; close with `aclose()`."""

    def __init__(
        self,
        workspace: Path,
        config: McpConfig | None = None,
        *,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        self.workspace = workspace.resolve()
        self.config = config or McpConfig()
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.starts: dict[str, int] = {}  # sessions started per server, for `mcp list` and tests

    def reconfigure(self, config: McpConfig) -> list[_Session]:
        """Take a new configuration; sessions of changed or removed servers are returned to close."""
        stale = []
        for name, session in list(self._sessions.items()):
            new = config.servers.get(name)
            if new is None or new.settings != session.server.settings:
                stale.append(self._sessions.pop(name))
        self.config = config
        return stale

    def state(self, name: str) -> str:
        session = self._sessions.get(name)
        if session is None:
            return "stopped"
        return "running" if session.usable else "exited"

    def session_of(self, name: str) -> _Session | None:
        return self._sessions.get(name)

    def server(self, name: str) -> ConfiguredServer:
        found = self.config.servers.get(name)
        if found is not None:
            return found
        if name in self.config.untrusted:
            raise McpServerError(
                f"MCP server {name!r} comes from the workspace's configuration, which is not "
                "loaded because the workspace is not trusted"
            )
        known = ", ".join(sorted(self.config.servers)) or "none"
        message = f"MCP server {name!r} is not configured (configured: {known}; see docs/mcp.md)"
        if self.config.errors:
            message += "; configuration errors: " + "; ".join(self.config.errors)
        raise McpServerError(message)

    async def session(self, name: str) -> _Session:
        """The server's live session, started (or restarted after an exit) when needed."""
        server = self.server(name)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            current = self._sessions.get(name)
            if current is not None and current.usable:
                return current
            if current is not None:
                await current.close()
                self._sessions.pop(name, None)
            await _import_sdk()
            fresh = _Session(server, self.workspace)
            await fresh.start(self.start_timeout)
            self._sessions[name] = fresh
            self.starts[name] = self.starts.get(name, 0) + 1
            return fresh

    async def tools(self, name: str) -> dict[str, ServerTool]:
        return (await self.session(name)).tools

    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        report: ProgressReport | None = None,
    ) -> ToolResult:
        """Call one tool; every failure is a tool error the model (or the user) can read.

        With `report`, the server's progress notifications for the call are passed on as lines
        (its message, else `step/total`); the caller bounds and redacts them."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED

        try:
            session = await self.session(server)
        except McpServerError as exc:
            return ToolResult.error(str(exc))
        assert session.client is not None
        try:
            async with asyncio.timeout(self.call_timeout):
                result = await session.client.call_tool(
                    tool, arguments, progress_callback=_passing_on(report) if report else None
                )
        except TimeoutError:
            return ToolResult.error(
                f"MCP server {server!r}: {tool} did not answer within {self.call_timeout:g} s "
                "(the per-call timeout, setting agentls.mcpCallTimeout); the call was cancelled"
            )
        except MCPError as exc:
            if _refused_as_too_large(exc.message):
                return ToolResult.error(
                    f"MCP server {server!r}: {tool} answered with more than "
                    f"{MAX_MESSAGE_BYTES:,} bytes, so agentls refused the result unread (the "
                    "limit for one message); ask for less, e.g. a narrower query"
                )
            if exc.code != CONNECTION_CLOSED:
                return ToolResult.error(f"MCP server {server!r} refused {tool}: {exc.message}")
            session.broken = True
            if session.fault is not None:
                reason = f"{session.fault} during {tool}"
            else:
                await session._wait_for_exit()
                reason = f"closed the connection during {tool} (the server exited?)"
            return ToolResult.error(
                session.call_failure(f"{reason}; it is started again on the next call")
            )
        except Exception as exc:  # a broken transport: start afresh next time
            session.broken = True
            return ToolResult.error(
                session.call_failure(
                    f"failed during {tool}: {type(exc).__name__}: {exc}; "
                    "it is started again on the next call"
                )
            )
        return render_result(result)

    async def close_sessions(self, sessions: list[_Session]) -> None:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

    async def aclose(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await self.close_sessions(sessions)
