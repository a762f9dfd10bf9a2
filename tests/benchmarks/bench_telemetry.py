"""Telemetry's cost: CPU per model call at 32 runs in flight, OTLP export on next to export off.

Each round runs 32 research tasks at once (two read_file calls, then the answer: three model
calls each) through `delegate_parallel`, once on a runtime without telemetry and once on a runtime
exporting spans and metrics over OTLP/HTTP to a local receiver; rounds alternate, and the medians
are printed. CPU is this process's (every thread: the event loop, the ledger and audit writers,
and the SDK's export thread, which is flushed before the clock stops, so the export's own
serialization and HTTP are counted; metrics are recorded in each call and exported by their
reader once a minute, as in use). The scripted model server and the OTLP receiver run in child
processes (this script with --serve / --receive), so their work is not counted. Goal (issue 17):
export on within 10 % of export off. Printed, not asserted.

    .venv/bin/python tests/benchmarks/bench_telemetry.py [--latency 0.05] [--repeat 5] [--runs 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

MODEL = "scripted-model"
API_KEY = "sk-bench"
CALLS_PER_RUN = 3
APP = "def total(prices):\n    return sum(prices)\n"


def serve(latency: float) -> int:
    from tests.rig.scripted_openai import ScriptedOpenAI, serve_until_stdin_closes, turns

    server = ScriptedOpenAI(latency=latency)
    server.responder = turns(2, "read_file", {"path": "src/app.py"}, final="The totals add up.")
    return serve_until_stdin_closes(server)


def receive() -> int:
    from tests.rig.otlp_receiver import OtlpReceiver

    with OtlpReceiver() as collector:
        print(f"URL {collector.url}", flush=True)
        while sys.stdin.read(1):
            pass
    return 0


def child(*args: str) -> contextlib.AbstractContextManager[str]:
    from tests.rig.scripted_openai import server_process

    return server_process(Path(__file__).resolve(), *args, cwd=ROOT)


def make_runtime(url: str, otlp: str | None) -> Any:
    from agentls.core.engine import EngineSettings, build_runtime
    from agentls.core.telemetry import TelemetrySettings

    root = Path(tempfile.mkdtemp(prefix="agentls-bench-telemetry-"))
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text(APP)
    settings = EngineSettings(
        model=MODEL,
        base_url=url,
        api_key=API_KEY,
        max_parallel=256,
        telemetry=TelemetrySettings(otlp_endpoint=otlp),
    )
    return build_runtime(root, settings)


async def round_cpu(runtime: Any, runs: int, flush: bool) -> float:
    """CPU seconds of one round of `runs` parallel tasks (and, with `flush`, their export)."""
    from agentls.core import telemetry
    from agentls.core.parallel import ParallelTask, delegate_parallel

    tasks = [
        ParallelTask(agent="research", goal=f"Do the totals add up? ({i})") for i in range(runs)
    ]
    started = time.process_time()
    result = await delegate_parallel(runtime, tasks, max_parallel=runs)
    bad = [r for r in result.results if r.status.value != "finished"]
    if bad:
        raise RuntimeError(f"{len(bad)} of {runs} runs did not finish: {bad[0].error}")
    active = telemetry.active()
    if flush and active is not None and active.span_processor is not None:
        # The round's spans are encoded and sent before the clock stops. Metrics are left to
        # their reader (one export a minute: nothing per call to speak of).
        await asyncio.to_thread(active.span_processor.force_flush)
    return time.process_time() - started


async def measure(url: str, otlp: str, runs: int, repeat: int) -> dict[str, list[float]]:
    off = make_runtime(url, None)
    on = make_runtime(url, otlp)
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for _ in range(2):  # warm-up: imports, tokenizer, connections
            await round_cpu(off, runs, False)
            await round_cpu(on, runs, True)
        for _ in range(repeat):
            cpu["off"].append(await round_cpu(off, runs, False))
            cpu["on"].append(await round_cpu(on, runs, True))
    finally:
        await off.aclose()
        await on.aclose()
    return cpu


def report(cpu: dict[str, list[float]], runs: int, latency: float) -> None:
    calls = runs * CALLS_PER_RUN
    per_call = {mode: statistics.median(values) / calls * 1000 for mode, values in cpu.items()}
    print(f"telemetry: {runs} runs in flight, {calls} model calls per round, latency {latency:g} s")
    print(f"{'export':<8}{'CPU ms / model call (median)':>30}{'min':>10}{'max':>10}")
    for mode in ("off", "on"):
        values = [v / calls * 1000 for v in cpu[mode]]
        print(f"{mode:<8}{per_call[mode]:>30.3f}{min(values):>10.3f}{max(values):>10.3f}")
    overhead = per_call["on"] / per_call["off"] - 1
    verdict = "within" if overhead <= 0.10 else "over"
    print(f"export on costs {overhead:+.1%} CPU per model call ({verdict} the 10 % goal)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per mode")
    parser.add_argument("--runs", type=int, default=32, help="runs in flight")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.latency)
    if args.receive:
        return receive()
    for key in list(os.environ):
        if key.startswith(("OTEL_", "OPENAI_", "AGENTLS_")) or key == "TRACEPARENT":
            os.environ.pop(key)
    os.environ["HOME"] = tempfile.mkdtemp(prefix="agentls-bench-home-")  # no user agents
    from agentls.core import telemetry

    with child("--serve", "--latency", str(args.latency)) as url, child("--receive") as otlp:
        cpu = asyncio.run(measure(url, otlp, args.runs, args.repeat))
        telemetry.shutdown()  # while the receiver still listens
    report(cpu, args.runs, args.latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
