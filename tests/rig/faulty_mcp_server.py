"""A real MCP server (the official SDK, stdio) whose tools fail on purpose, for fault tests.

`python tests/rig/faulty_mcp_server.py` serves: `pid` (this process id), `crash` (writes a line
to stderr and exits in the middle of the call), `hang` (never answers until cancelled) and
`flood` (answers with a 20 MB message).
With `--http PORT` it serves the same over Streamable HTTP on 127.0.0.1:PORT/mcp instead.
"""

from __future__ import annotations

import asyncio
import os
import sys

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


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
