"""A real MCP server (the official SDK, stdio) whose tools fail on purpose, for fault tests.

`python tests/rig/faulty_mcp_server.py` serves: `pid` (this process id), `crash` (writes a line
to stderr and exits in the middle of the call), `hang` (never answers until cancelled) and
`flood` (answers with a 20 MB message).
With `--http PORT` it serves the same over Streamable HTTP on 127.0.0.1:PORT/mcp instead; add
`--no-length` to send every response without a Content-Length (chunked), as a hostile server may.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from mcp.server import MCPServer

server = MCPServer("faulty")


@server.tool()
async def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
async def crash() -> str:
    """Exit in the middle of the call."""
    sys.stderr.write("faulty: crashing on purpose\n")
    sys.stderr.flush()
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answer (until the call is cancelled)."""
    await asyncio.sleep(3600)
    return "too late"


@server.tool()
async def flood() -> str:
    """Answer with 20 MB of text: one JSON-RPC message bigger than any client should take."""
    return "a" * 20_000_000


def without_length(app: Any) -> Any:
    """The ASGI app with Content-Length taken off its responses, so they go out chunked."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_unsized(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_unsized)

    return wrapped


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"] and sys.argv[3:] == ["--no-length"]:
        import uvicorn

        app = without_length(server.streamable_http_app(host="127.0.0.1"))
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), lifespan="on")
    elif len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
