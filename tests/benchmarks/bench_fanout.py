"""Fan-out: N research tasks of three model calls each, at once, against a scripted model server.

For N = 1, 2, 4, 8, 16, 32 it prints: the wall time of `delegate_parallel` (max_parallel = N), the
time of the same tasks run one after another (N × the median of one run alone, so one slow call on a
busy machine does not skew it), the speedup and efficiency (speedup / N), the floor
(the same requests issued by a bare `asyncio.gather` over one shared `openai.AsyncOpenAI`, no
agentls), agentls' overhead over that floor, and the memory each run in flight holds (tracemalloc
peak over the baseline, in a separate untimed pass). Goals (from the issue): efficiency >= 0.95
at N = 32 and at most 5 % over the bare-gather floor.

The scripted server runs in a child process (this script with --serve) so that serving does not
share the measuring interpreter; every call waits a fixed latency there.

    .venv/bin/python tests/benchmarks/bench_fanout.py [--latency 0.2] [--repeat 3] [--max-n 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

TOOL_TURNS = 2  # two read_file calls, then the answer: three model calls per task
TOOL_ARGS = {"path": "src/app.py"}
MODEL = "scripted-model"
API_KEY = "sk-bench"
APP = "def total(prices):\n    return sum(prices)\n\n\ndef mean(values):\n    return sum(values) / len(values)\n"


# The scripted server, in its own process


def serve(latency: float) -> int:
    """Child process: serve turns(2) with a fixed latency until stdin closes."""
    from tests.rig.scripted_openai import ScriptedOpenAI, serve_until_stdin_closes, turns

    server = ScriptedOpenAI(latency=latency)
    server.responder = turns(TOOL_TURNS, "read_file", TOOL_ARGS, final="The totals add up.")
    return serve_until_stdin_closes(server)


def scripted_server(latency: float) -> contextlib.AbstractContextManager[str]:
    """This file's `serve` in a child process; yields its URL."""
    from tests.rig.scripted_openai import server_process

    return server_process(Path(__file__).resolve(), "--serve", "--latency", str(latency), cwd=ROOT)


# agentls


def make_workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="agentls-fanout-"))
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text(APP)
    return root


def make_runtime(workspace: Path, url: str, max_parallel: int):  # type: ignore[no-untyped-def]
    from agentls.core.engine import EngineSettings, build_runtime

    return build_runtime(
        workspace,
        EngineSettings(
            model=MODEL, base_url=url, api_key=API_KEY, max_parallel=max(1, min(256, max_parallel))
        ),
    )


def tasks_for(n: int) -> list[Any]:
    from agentls.core.parallel import ParallelTask

    return [
        ParallelTask(agent="research", goal=f"Do the totals add up? (task {i})") for i in range(n)
    ]


async def agentls_parallel(runtime: Any, n: int) -> float:
    from agentls.core.parallel import delegate_parallel

    started = time.perf_counter()
    result = await delegate_parallel(runtime, tasks_for(n), max_parallel=n)
    wall = time.perf_counter() - started
    bad = [r for r in result.results if r.status.value != "finished"]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} runs did not finish: {bad[0].error}")
    return wall


async def agentls_sequential(runtime: Any, n: int) -> float:
    """The tasks one after another: N × the median time of one (robust to one slow call)."""
    times = []
    for task in tasks_for(n):
        started = time.perf_counter()
        result = await runtime.delegate(task.agent, task.goal or "", run_id=task.run_id)
        times.append(time.perf_counter() - started)
        if result.status.value != "finished":
            raise RuntimeError(f"a sequential run did not finish: {result.error}")
    return n * statistics.median(times)


# The floor: the same three requests per task through the bare SDK


def floor_requests(runtime: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The research agent's first messages, its tool specs, and what read_file returns."""
    from agentls.core.tools.workspace import workspace_tools

    definition = runtime.resolve_agent("research")
    tools = workspace_tools(runtime.sandbox, definition.name)
    specs = [tools[name].spec.to_openai() for name in definition.tools if name in tools]
    from agentls.core.prompts import first_messages

    messages = first_messages(_FakeRun(definition, "Do the totals add up? (task 0)"), "")
    return messages, specs, APP


@dataclass
class _FakeRun:
    definition: Any
    goal: str
    target: Any = None


async def bare_task(
    client: Any, messages: list[dict[str, Any]], specs: list[Any], tool_text: str
) -> None:
    """Three streamed calls, like a run: two answered with a tool call, then the answer."""
    history = [dict(m) for m in messages]
    for _ in range(TOOL_TURNS + 1):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=history,
            max_tokens=1024,
            temperature=0.2,
            tools=specs,
            tool_choice="auto",
            stream=True,
            stream_options={"include_usage": True},
        )
        calls: dict[int, dict[str, str]] = {}
        text: list[str] = []
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    text.append(choice.delta.content)
                for tc in choice.delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function and tc.function.name:
                        slot["name"] += tc.function.name
                    if tc.function and tc.function.arguments:
                        slot["arguments"] += tc.function.arguments
        if not calls:
            return
        history.append(
            {
                "role": "assistant",
                "content": "".join(text) or None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls.values()
                ],
            }
        )
        for c in calls.values():
            history.append(
                {"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": tool_text}
            )
    raise RuntimeError("the bare task never got its answer")


async def bare_gather(client: Any, n: int, request: tuple[Any, Any, str]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(bare_task(client, *request) for _ in range(n)))
    return time.perf_counter() - started


# Measuring


async def memory_per_run(n: int, body: Callable[[], Awaitable[Any]]) -> float:
    """KiB held per run in flight: tracemalloc's peak during `body` over the baseline, / n."""
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await body()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - base) / 1024 / n


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class RssPeak:
    """Samples this process's RSS every 5 ms while running (a cross-check of tracemalloc)."""

    def __enter__(self) -> RssPeak:
        self.before = rss_kib()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_kib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib())


@dataclass
class Row:
    n: int
    parallel: float
    sequential: float
    floor: float
    mem_kib: float
    floor_mem_kib: float
    rss_kib: float
    cpu_ms: float  # this process's CPU time per model call
    floor_cpu_ms: float

    @property
    def speedup(self) -> float:
        return self.sequential / self.parallel

    @property
    def efficiency(self) -> float:
        return self.speedup / self.n

    @property
    def over_floor(self) -> float:
        return self.parallel / self.floor - 1.0


async def measure(url: str, ns: list[int], repeat: int, latency: float) -> list[Row]:
    from openai import AsyncOpenAI

    workspace = make_workspace()
    runtime = make_runtime(workspace, url, max(ns))
    runtime.budgeter.set_limit(None)
    client = AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=60)
    request = floor_requests(runtime)
    rows = []
    try:
        # Warm up both paths (imports, connection pools, SQLite pages).
        await agentls_parallel(runtime, 4)
        await bare_gather(client, 4, request)
        for n in ns:
            parallel, floor = [], []
            cpu, floor_cpu = 0.0, 0.0
            for _ in range(repeat):  # interleaved, so drift hits both alike
                before = time.process_time()
                parallel.append(await agentls_parallel(runtime, n))
                cpu += time.process_time() - before
                before = time.process_time()
                floor.append(await bare_gather(client, n, request))
                floor_cpu += time.process_time() - before
            calls = repeat * n * (TOOL_TURNS + 1)
            sequential = await agentls_sequential(runtime, n)
            mem = await memory_per_run(n, lambda n=n: agentls_parallel(runtime, n))
            floor_mem = await memory_per_run(n, lambda n=n: bare_gather(client, n, request))
            gc.collect()
            with RssPeak() as rss:
                await agentls_parallel(runtime, n)
            rows.append(
                Row(
                    n=n,
                    parallel=statistics.median(parallel),
                    sequential=sequential,
                    floor=statistics.median(floor),
                    mem_kib=mem,
                    floor_mem_kib=floor_mem,
                    rss_kib=max(0, rss.peak - rss.before) / n,
                    cpu_ms=cpu / calls * 1000,
                    floor_cpu_ms=floor_cpu / calls * 1000,
                )
            )
            print(f"  N={n}: done", file=sys.stderr, flush=True)
    finally:
        await client.close()
        await runtime.aclose()
    return rows


def report(rows: list[Row], latency: float, repeat: int) -> bool:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(140, Console().width))
    table = Table(
        title=f"Fan-out: N research tasks × {TOOL_TURNS + 1} model calls, {latency * 1000:.0f} ms "
        f"per call (median of {repeat})"
    )
    for column in (
        "N",
        "agentls wall",
        "sequential",
        "speedup",
        "efficiency",
        "floor (bare gather)",
        "floor eff.",
        "over floor",
        "mem / run in flight",
        "floor mem / task",
        "RSS Δ / run",
    ):
        table.add_column(column, justify="right")
    one = next((r for r in rows if r.n == 1), None)
    for r in rows:
        # The floor's own efficiency: one bare task at a time, N times, over the bare gather.
        floor_eff = f"{one.floor / r.floor:.3f}" if one else "-"
        table.add_row(
            str(r.n),
            f"{r.parallel:.3f} s",
            f"{r.sequential:.2f} s",
            f"{r.speedup:.2f}×",
            f"{r.efficiency:.3f}",
            f"{r.floor:.3f} s",
            floor_eff,
            f"{r.over_floor * 100:+.1f} %",
            f"{r.mem_kib:,.0f} KiB",
            f"{r.floor_mem_kib:,.0f} KiB",
            f"{r.rss_kib:,.0f} KiB",
        )
    console.print(table)
    last = rows[-1]
    eff_ok = last.efficiency >= 0.95
    floor_ok = last.over_floor <= 0.05
    mark = {True: "[green]met[/green]", False: "[red]NOT met[/red]"}
    console.print(f"Goal efficiency ≥ 0.95 at N = {last.n}: {last.efficiency:.3f} — {mark[eff_ok]}")
    console.print(
        f"Goal ≤ 5 % over the bare-gather floor at N = {last.n}: "
        f"{last.over_floor * 100:+.1f} % — {mark[floor_ok]}"
    )
    one = next((r for r in rows if r.n == 1), None)
    floor_eff = f"{one.floor / last.floor:.2f}" if one else "?"
    console.print(
        f"CPU per model call at N = {last.n}: agentls {last.cpu_ms:.2f} ms, bare SDK "
        f"{last.floor_cpu_ms:.2f} ms. The N responses of a round arrive together and are parsed "
        f"one after another, so the bare SDK alone reaches an efficiency of {floor_eff} here: "
        "that is the ceiling on this machine at this latency."
    )
    near = [r for r in rows if r.n in (2, 4)]
    console.print(
        "The fork reported 2.5× for 3 agents (a manual run); here "
        + ", ".join(f"N = {r.n}: {r.speedup:.2f}×" for r in near)
        + "."
    )
    return eff_ok and floor_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per model call")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions per N")
    parser.add_argument("--max-n", type=int, default=32, help="largest N (powers of two)")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.latency)
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL"):
        os.environ.pop(key, None)
    os.environ["HOME"] = tempfile.mkdtemp(prefix="agentls-fanout-home-")  # no user agents
    ns = [n for n in (1, 2, 4, 8, 16, 32, 64, 128) if n <= args.max_n]
    with scripted_server(args.latency) as url:
        rows = asyncio.run(measure(url, ns, args.repeat, args.latency))
    report(rows, args.latency, args.repeat)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
