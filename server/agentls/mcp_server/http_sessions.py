"""A memory bound on the open sessions of `agentls mcp-server --http`.

Every Streamable HTTP session the MCP SDK keeps costs memory while it sits idle (its server task,
streams and buffers: about 38 KB of RSS, see tests/benchmarks/bench_mcp_http_sessions.py), and
the SDK keeps up to 10,000 of them for 30 minutes each: some 400 MB, for clients that never said
goodbye. Here the count is derived from a memory budget, and a new session makes room by closing
the one idle the longest (one with no call in flight), the way a client closes its own: a DELETE
of its session id through the SDK's app. A session with a call in flight (a run) is never closed;
when every session is busy, a new one is refused with 503.

Only clients of the protocol versions before 2026-07-28 (the initialize handshake) have sessions;
the sessionless 2026 protocol keeps nothing between requests.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS as HANDSHAKE_VERSIONS

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("agentls.mcp.http")

# What idle sessions may hold between them, and what one holds (measured by the benchmark above,
# rounded up): the cap is their quotient.
IDLE_SESSIONS_MEMORY = 16 * 1024 * 1024
IDLE_SESSION_BYTES = 64 * 1024
MAX_SESSIONS = IDLE_SESSIONS_MEMORY // IDLE_SESSION_BYTES

SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"


@dataclass
class _Session:
    last_used: float
    in_flight: int = 0


class SessionBound:
    """ASGI middleware in front of the SDK's Streamable HTTP app: at most `max_sessions` open."""

    def __init__(self, app: ASGIApp, max_sessions: int = MAX_SESSIONS) -> None:
        self.app = app
        self.max_sessions = max_sessions
        # The sessions the SDK opened, as their ids came back; one that ended on its own (the
        # SDK's idle timeout) stays until it is evicted first or a request finds it gone.
        self._sessions: dict[str, _Session] = {}
        # Opening requests admitted and not answered yet: they count against the cap.
        self._opening = 0
        self._admission = anyio.Lock()

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session_id = header(scope, SESSION_HEADER)
        if session_id is None and opens_a_session(scope):
            await self._open(scope, receive, send)
        elif session_id is None:
            await self.app(scope, receive, send)
        elif (session := self._sessions.get(session_id)) is not None:
            await self._use(session_id, session, scope, receive, send)
        else:
            await self.app(scope, receive, send)  # unknown to us: the SDK answers 404

    async def _use(
        self, session_id: str, session: _Session, scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # A GET is the client's standing event stream, held open while it is idle: it does not
        # make the session busy (a call does).
        call = 0 if scope["method"] == "GET" else 1
        session.in_flight += call
        session.last_used = time.monotonic()
        try:
            await self.app(scope, receive, watch)
        finally:
            session.in_flight -= call
            session.last_used = time.monotonic()
            ended = scope["method"] == "DELETE" and status < 400
            if ended or status == 404:
                self._sessions.pop(session_id, None)

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._admission:
            while len(self._sessions) + self._opening >= self.max_sessions:
                if not await self._evict_one(scope):
                    await too_many(send, self.max_sessions)
                    return
            self._opening += 1
        opened: str | None = None

        async def watch(message: Message) -> None:
            nonlocal opened
            if message["type"] == "http.response.start" and message["status"] < 400:
                for name, value in message.get("headers", []):
                    if name.lower() == SESSION_HEADER:
                        opened = value.decode("latin-1")
                        self._sessions[opened] = _Session(time.monotonic(), in_flight=1)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._opening -= 1
            if opened is not None and (session := self._sessions.get(opened)) is not None:
                session.in_flight -= 1
                session.last_used = time.monotonic()

    async def _evict_one(self, scope: Scope) -> bool:
        """Close the session idle the longest; False when every session has a request in flight."""
        idle = [(s.last_used, sid) for sid, s in self._sessions.items() if s.in_flight == 0]
        if not idle:
            return False
        _, session_id = min(idle)
        del self._sessions[session_id]
        logger.info("agentls mcp-server: closed the session idle the longest to open a new one")
        await self.app(closing_request(scope, session_id), empty_body(), ignore)
        return True


def opens_a_session(scope: Scope) -> bool:
    """A POST without a session id on a handshake-era protocol (as the SDK routes it): an
    initialize. The sessionless 2026 protocol and anything else open none."""
    version = header(scope, VERSION_HEADER)
    return scope["method"] == "POST" and (version is None or version in HANDSHAKE_VERSIONS)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def closing_request(scope: Scope, session_id: str) -> Scope:
    """A DELETE of `session_id`, as a client ending its session sends it, at the request's path
    and with its Host (so the SDK's own checks pass)."""
    keep = (b"host", b"authorization")
    headers = [(k, v) for k, v in scope["headers"] if k.lower() in keep]
    headers.append((SESSION_HEADER, session_id.encode("latin-1")))
    return {**scope, "method": "DELETE", "headers": headers, "query_string": b""}


def empty_body() -> Receive:
    """The body of the DELETE (none), then a disconnect for anything that listens on."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    return receive


async def ignore(message: Message) -> None:
    return None


async def too_many(send: Send, limit: int) -> None:
    body = (
        f"agentls mcp-server: {limit} sessions are open and each has a call in flight; "
        "try again when one ends\n"
    ).encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"5"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
