"""Overhead of one `delegate` over MCP against the same run in-process (printed, not asserted).

The same one-call run of the `explain` agent, against the scripted model server (no latency), is
timed three ways, each `--runs` times after a warm-up:

- in-process: `AgentRuntime.delegate` directly (the floor);
- MCP in-process: the `delegate` tool through the Python `mcp` Client connected to the server
  object (the MCP layer: argument validation, the diff, structured results, progress);
- MCP stdio: the `delegate` tool of an `agentls mcp-server` child process, as Claude Code or an
  orchestrating agentls run calls it (adds JSON-RPC over pipes and a second process).

It prints p50/p99 per way and the overhead of each over the floor, in milliseconds. The stdio
child's start-up (paid once per session, or once per orchestrating run) is printed apart.

    .venv/bin/python tests/benchmarks/bench_mcp_delegate.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from mcp import Client, StdioServerParameters  # noqa: E402
from tests.rig.scripted_openai import ScriptedOpenAI, Text  # noqa: E402

from agentls.core.engine import EngineSettings, build_runtime  # noqa: E402
from agentls.core.target import Target  # noqa: E402
from agentls.mcp_server.server import build_server  # noqa: E402

SOURCE = "def add(a, b):\n    return a + b\n"
ARGS = {"agent": "explain", "goal": "what does add do", "file": "calc.py"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def timed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    await call()  # warm-up: clients, imports, the first SQLite pages
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000.0)
    return out


async def main(runs: int) -> None:
    with ScriptedOpenAI() as scripted, tempfile.TemporaryDirectory() as tmp:
        scripted.responder = lambda body: Text("add returns the sum of a and b")
        workspace = Path(tmp).resolve()
        (workspace / "calc.py").write_text(SOURCE, encoding="utf-8")
        settings = EngineSettings(model="scripted-model", base_url=scripted.url, api_key="sk-b")
        runtime = build_runtime(workspace, settings)
        results: dict[str, list[float]] = {}
        try:
            target = Target(path=workspace / "calc.py")

            async def direct() -> object:
                return await runtime.delegate("explain", ARGS["goal"], target)

            results["in-process"] = await timed(direct, runs)

            async with Client(build_server(runtime)) as client:
                results["MCP in-process"] = await timed(
                    lambda: client.call_tool("delegate", ARGS), runs
                )
        finally:
            await runtime.aclose()

        env = {
            "OPENAI_API_KEY": "sk-b",
            "OPENAI_BASE_URL": scripted.url,
            "AGENTLS_MODEL": "scripted-model",
        }
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "agentls", "--workspace", str(workspace), "mcp-server"],
            env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        )
        started = time.perf_counter()
        async with Client(params) as client:
            await client.list_tools()
            startup_ms = (time.perf_counter() - started) * 1000.0
            results["MCP stdio"] = await timed(lambda: client.call_tool("delegate", ARGS), runs)

    floor = statistics.median(results["in-process"])
    print(f"one delegate of `explain` (one model call), {runs} runs each, ms")
    print(f"{'way':<16}{'p50':>9}{'p99':>9}{'overhead p50':>15}")
    for way, values in results.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        extra = "" if way == "in-process" else f"{p50 - floor:+.1f}"
        print(f"{way:<16}{p50:>9.1f}{p99:>9.1f}{extra:>15}")
    print(f"stdio child start-up (spawn, import, initialize, tools/list): {startup_ms:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
