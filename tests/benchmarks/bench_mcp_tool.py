"""What an MCP tool call costs through agentls against a direct SDK call (printed, not asserted).

Both sides call `get-sum` of the npm reference server-everything over stdio, in one process and
one run, interleaved call by call so machine load hits both alike:

- direct: `mcp.Client(...).call_tool` on a session held open by the benchmark;
- agentls: the `McpTool` an agent gets (`mcp__everything__get-sum`), through the shared pool:
  session lookup, per-call timeout, and rendering of the result for the model.

Also printed: the first call through agentls, which starts the server (on first use).

    .venv/bin/python tests/benchmarks/bench_mcp_tool.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentls.core.definitions import AgentDefinition, Mode  # noqa: E402
from agentls.core.mcp_client.config import McpServerSettings  # noqa: E402
from agentls.core.mcp_client.pool import McpPool  # noqa: E402
from agentls.core.mcp_client.tools import McpToolProvider  # noqa: E402

EVERYTHING = ROOT / "tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
AGENT = AgentDefinition(
    name="adder",
    description="Adds",
    instructions="Add.",
    mode=Mode.TOOLS,
    mcp={"everything": ["get-sum"]},
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(calls: int) -> None:
    from mcp import Client, StdioServerParameters

    settings = McpServerSettings(command="node", args=[str(EVERYTHING)])
    with tempfile.TemporaryDirectory() as tmp:
        provider = McpToolProvider(McpPool(Path(tmp)), {"everything": settings})
        started = time.perf_counter()
        tools = await provider(AGENT)
        first_use_ms = (time.perf_counter() - started) * 1000
        tool = tools["mcp__everything__get-sum"]
        direct_ms: list[float] = []
        agentls_ms: list[float] = []
        params = StdioServerParameters(command="node", args=[str(EVERYTHING)])
        try:
            async with Client(params) as client:
                for i in range(calls):
                    arguments = {"a": i, "b": 1}
                    t0 = time.perf_counter()
                    direct = await client.call_tool("get-sum", arguments)
                    t1 = time.perf_counter()
                    ours = await tool.call(arguments)
                    t2 = time.perf_counter()
                    assert not direct.is_error and not ours.is_error, ours.content
                    direct_ms.append((t1 - t0) * 1000)
                    agentls_ms.append((t2 - t1) * 1000)
        finally:
            await provider.aclose()

    table = Table(title=f"MCP tool call get-sum, server-everything over stdio ({calls} calls)")
    for column in ("path", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, values in (("direct mcp SDK", direct_ms), ("agentls McpTool", agentls_ms)):
        table.add_row(
            name,
            f"{percentile(values, 0.5):.2f}",
            f"{percentile(values, 0.99):.2f}",
            f"{statistics.fmean(values):.2f}",
        )
    overhead = [a - d for a, d in zip(agentls_ms, direct_ms, strict=True)]
    table.add_row(
        "overhead (per call)",
        f"{percentile(overhead, 0.5):.2f}",
        f"{percentile(overhead, 0.99):.2f}",
        f"{statistics.fmean(overhead):.2f}",
    )
    console = Console()
    console.print(table)
    console.print(f"first use through agentls (start server, list tools): {first_use_ms:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(bench(args.calls))


if __name__ == "__main__":
    main()
