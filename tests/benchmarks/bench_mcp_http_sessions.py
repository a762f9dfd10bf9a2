"""What idle sessions of `agentls mcp-server --http` hold in memory, with and without the bound
(printed, not asserted).

Clients that initialize a session and never come back (nor send DELETE) leave it open: the SDK
alone keeps each for 30 minutes, up to 10,000. The benchmark serves the real app (guard, session
bound, the SDK's Streamable HTTP app, the engine) with uvicorn on 127.0.0.1 in this process and
opens sessions the way such clients do (an initialize request, over one keep-alive connection):

- unbounded: N sessions with the cap lifted; memory per idle session (tracemalloc, and RSS);
- bounded: 3x the default cap (MAX_SESSIONS) with the default bound; what stays open and held.

Each figure comes from a fresh interpreter (RSS ones without tracemalloc, whose bookkeeping
would count too).

The per-session figure is what IDLE_SESSION_BYTES in server/agentls/mcp_server/http_sessions.py rounds up.

    .venv/bin/python tests/benchmarks/bench_mcp_http_sessions.py [--sessions 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

import httpx2  # noqa: E402
import psutil  # noqa: E402
import uvicorn  # noqa: E402

from agentls.core.engine import EngineSettings, build_runtime  # noqa: E402
from agentls.mcp_server.http_app import http_app  # noqa: E402
from agentls.mcp_server.http_sessions import (  # noqa: E402
    IDLE_SESSION_BYTES,
    IDLE_SESSIONS_MEMORY,
    MAX_SESSIONS,
    SessionBound,
)
from agentls.mcp_server.server import build_server  # noqa: E402

TOKEN = "a-token-for-the-benchmark-0123456789"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "vanishing", "version": "1"},
    },
}
MB = 1024 * 1024
WARM_UP = 20


@asynccontextmanager
async def serving(workspace: Path, max_sessions: int) -> AsyncIterator[tuple[str, SessionBound]]:
    # No model is called: the sessions only initialize.
    settings = EngineSettings(model="none", base_url="http://127.0.0.1:9/v1", api_key="unused")
    runtime = build_runtime(workspace, settings)
    app = http_app(build_server(runtime), "127.0.0.1", TOKEN, max_sessions=max_sessions)
    assert isinstance(app.app, SessionBound)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on")
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve())
    try:
        while not web.started:
            if task.done():
                await task
            await asyncio.sleep(0.02)
        port = web.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/mcp", app.app
    finally:
        web.should_exit = True
        await task
        await runtime.aclose()


async def open_sessions(url: str, count: int) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        for _ in range(count):
            response = await http.post(url, json=INITIALIZE)
            if response.status_code != 200:
                raise SystemExit(f"initialize answered {response.status_code}: {response.text}")


def held(traced: bool) -> int:
    """Bytes traced by tracemalloc (`traced`) or the process's RSS, after a collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0] if traced else psutil.Process().memory_info().rss


async def measure(max_sessions: int, count: int, traced: bool) -> dict[str, int]:
    """Open `count` sessions after a warm-up of WARM_UP: the sessions open in all, and the bytes
    the `count` added (traced, or RSS)."""
    if traced:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        async with serving(Path(tmp), max_sessions) as (url, bound):
            await open_sessions(url, WARM_UP)  # imports, caches, the connection
            before = held(traced)
            await open_sessions(url, count)
            return {"open": bound.open_sessions, "added": held(traced) - before}


def run_case(case: str, count: int) -> dict[str, int]:
    """One measurement in a fresh interpreter, so that no case inherits another's heap."""
    done = subprocess.run(
        [sys.executable, __file__, "--case", case, "--sessions", str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


def report(count: int) -> None:
    rss = run_case("unbounded-rss", count)
    traced = run_case("unbounded-traced", count)
    opened = rss["open"] - WARM_UP
    per_traced = traced["added"] / opened
    per_rss = rss["added"] / opened
    print(f"unbounded: {opened} idle sessions hold {traced['added'] / MB:.1f} MB traced ", end="")
    print(f"({per_traced / 1024:.1f} KB each); RSS +{rss['added'] / MB:.1f} MB ", end="")
    print(f"({per_rss / 1024:.1f} KB each)")
    sdk_cap = 10_000
    print(
        f"  the SDK's own cap, {sdk_cap} sessions for 30 min: ~{sdk_cap * per_rss / MB:.0f} MB RSS"
    )
    print(
        f"bound: MAX_SESSIONS = {MAX_SESSIONS} "
        f"(= {IDLE_SESSIONS_MEMORY // MB} MB / {IDLE_SESSION_BYTES // 1024} KB per session; "
        f"{'covers' if max(per_traced, per_rss) <= IDLE_SESSION_BYTES else 'UNDER'} the "
        "measured figures)"
    )
    many = 3 * MAX_SESSIONS
    rss = run_case("bounded-rss", many)
    traced = run_case("bounded-traced", many)
    print(
        f"bounded: {WARM_UP + many} sessions opened, {rss['open']} left open, "
        f"{traced['added'] / MB:.1f} MB traced, RSS +{rss['added'] / MB:.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is None:
        report(args.sessions)
        return
    bound, kind = args.case.split("-")
    cap = 10**6 if bound == "unbounded" else MAX_SESSIONS
    print(json.dumps(asyncio.run(measure(cap, args.sessions, traced=kind == "traced"))))


if __name__ == "__main__":
    main()
