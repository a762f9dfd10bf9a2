"""The HTTP client of url MCP servers: what one response may hold is bounded, as on stdio.

The SDK's Streamable HTTP transport reads a JSON response body whole (`response.aread()`), without
bound, and bounds a server-sent event at a size of its own. Here every response body that is not
an event stream is cut off once it passes `max_bytes` (before it is buffered: a Content-Length over
it is refused unread), event streams are bounded per event at the same size by the SDK, and
compressed bodies are not asked for (a small gzip body can expand without bound before any count).
The error the SDK then raises for the call carries `OVERSIZE_NOTE`, which the pool turns into a
tool error naming the server and the tool; the session itself stays up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

OVERSIZE_NOTE = "response larger than the limit"


class ResponseTooLarge(httpx2.StreamError):
    """A response body past the limit; the SDK reports it as that call's error."""


class _BoundedBody(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int, refuse: str | None) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.refuse = refuse  # why the body is refused before it is read, if it is

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.refuse is not None:
            raise ResponseTooLarge(f"{OVERSIZE_NOTE} ({self.refuse})")
        size = 0
        async for chunk in self.inner:
            size += len(chunk)
            if size > self.max_bytes:
                raise ResponseTooLarge(f"{OVERSIZE_NOTE} ({self.max_bytes:,} bytes)")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """httpx2's own transport, with the body of each non-event-stream response bounded."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("text/event-stream"):
            return response  # bounded per event by the SDK (max_sse_event_size)
        refuse = None
        length = response.headers.get("content-length", "")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if length.isdigit() and int(length) > self.max_bytes:
            refuse = f"{int(length):,} bytes announced, {self.max_bytes:,} allowed"
        elif encoding not in ("", "identity"):
            refuse = f"{encoding}-encoded although agentls asked for none"
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _BoundedBody(response.stream, self.max_bytes, refuse)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def bounded_http_client(headers: dict[str, str], max_bytes: int) -> httpx2.AsyncClient:
    """An HTTP client for one url server: its headers, generous timeouts, bounded responses."""
    return httpx2.AsyncClient(
        headers={"Accept-Encoding": "identity", **headers},
        timeout=httpx2.Timeout(30.0, read=300.0),
        transport=BoundedTransport(max_bytes),
    )
