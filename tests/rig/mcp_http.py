"""`agentls mcp-server --http` in a subprocess, and an MCP client that sends its bearer token."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

AGENTLS = [sys.executable, "-m", "agentls"]
ROOT = Path(__file__).resolve().parent.parent.parent
# Node's fetch and undici send the token with every request of a Node client (see the file).
NODE_TOKEN_PRELOAD = ROOT / "tests/node/bearer-token.mjs"


@dataclass
class HttpServer:
    url: str
    token: str | None
    proc: subprocess.Popen[str]
    # Everything it wrote on stderr: the lines up to "listening", then the rest as it comes.
    stderr: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def http_process(
    workspace: Path,
    env: dict[str, str],
    bind: str = "127.0.0.1:0",
    args: Sequence[str] = (),
) -> Iterator[HttpServer]:
    """`agentls mcp-server --http BIND` on `workspace`; yields it once it listens, with the URL and
    the token it printed (None when it printed none: a --token-file it read)."""
    proc = subprocess.Popen(
        [*AGENTLS, "--workspace", str(workspace), "mcp-server", "--http", bind, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    log: list[str] = []
    # Drains stderr once the server listens: a full pipe would block its next log line.
    drain = threading.Thread(target=lambda: log.extend(stderr), daemon=True)
    try:
        url = token = None
        for line in stderr:
            log.append(line)
            if match := re.search(r"bearer token (\S+) \(", line):
                token = match.group(1)
            if match := re.search(r"listening on (http://\S+)", line):
                url = match.group(1)
                break
        assert url is not None, "the server ended before it listened:\n" + "".join(log)
        drain.start()
        yield HttpServer(url, token, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()  # so that no later test finds it among its children
                proc.wait()
            if drain.is_alive():
                drain.join(timeout=10)
            stderr.close()


@contextlib.asynccontextmanager
async def token_client(
    url: str, token: str | None, *, legacy: bool = False
) -> AsyncIterator[Client]:
    """The Python MCP client over Streamable HTTP, sending `Authorization: Bearer <token>`.

    `legacy`: the initialize handshake and a session, as hosts on protocol versions before
    2026-07-28 connect (the SDK's client otherwise speaks the sessionless 2026 protocol)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    timeout = httpx2.Timeout(30, read=300)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy" if legacy else "auto") as client:
            yield client


def node_env(env: dict[str, str], server: HttpServer) -> dict[str, str]:
    """The environment for a Node MCP client (the conformance suite) that cannot send headers
    itself: the preload adds the token to its requests to the server."""
    return {
        **env,
        "NODE_OPTIONS": f"--import={NODE_TOKEN_PRELOAD}",
        "AGENTLS_TEST_BEARER_TOKEN": server.token or "",
        "AGENTLS_TEST_BEARER_ORIGIN": re.sub(r"(https?://[^/]+).*", r"\1", server.url),
    }
