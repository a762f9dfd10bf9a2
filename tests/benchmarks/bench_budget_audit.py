"""What the budgeter and the audit trail cost per model call (printed, not asserted).

Per simulated model call: reserve + commit against a file-backed ledger and two appends (the
model_call and a tool_call event) to a file-backed audit store, in a temporary workspace, with
durability on (WAL; synchronous=NORMAL survives a crash of the process, FULL also a power loss).
The goal is under 1 ms p99 per event. When tests/rig/scripted_openai.py is available, a bare
non-streaming chat call through the official openai SDK against it gives the scale.

    .venv/bin/python tests/benchmarks/bench_budget_audit.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

from agentls.core.audit import AuditStore, redact_event  # noqa: E402
from agentls.core.budget import TokenBudgeter  # noqa: E402
from agentls.core.events import EventKind, RunEvent, Usage  # noqa: E402

TOOL_ARGUMENTS = (
    "path='server/agentls/core/runtime.py', old_text='def _call_model(self, run, request):\\n"
    "    reservation = self.budgeter.reserve(run_id=run.id, ...)', new_text='...'"
)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Timings = dict[str, dict[str, list[float]]]  # step -> {"wall": [...], "cpu": [...]} in ms
STEPS = ("reserve", "commit", "append", "redact", "per call")


def _simulate(workspace: Path, calls: int, *, synchronous: str, listener: bool) -> Timings:
    """Time each step of `calls` model calls, wall clock and this thread's CPU time."""
    budgeter = TokenBudgeter.for_workspace(workspace)
    store = AuditStore.for_workspace(workspace, synchronous=synchronous)
    budgeter.set_limit(10**12)
    if listener:
        budgeter.add_listener(lambda snapshot: None)  # what the language server attaches
    timings: Timings = {step: {"wall": [], "cpu": []} for step in STEPS}

    def now() -> tuple[float, float]:
        # The process's CPU, not this thread's: the audit writes on its own writer thread.
        return time.perf_counter(), time.process_time()

    def record(step: str, start: tuple[float, float], end: tuple[float, float]) -> None:
        timings[step]["wall"].append((end[0] - start[0]) * 1e3)
        timings[step]["cpu"].append((end[1] - start[1]) * 1e3)

    warmup = min(200, calls // 5)
    run_usage = Usage()
    for n in range(warmup + calls):
        run_id = f"run{n // 8}"
        usage = Usage(input_tokens=1800 + n % 200, cached_input_tokens=1024, output_tokens=150)
        run_usage += usage
        model_call = RunEvent(
            kind=EventKind.MODEL_CALL,
            run_id=run_id,
            agent="reviewer",
            goal="review the selection for bugs",
            usage=run_usage,
            duration_ms=850.0,
            data={
                "turn": n % 8 + 1,
                "model": "gpt-4o-mini",
                "call_usage": usage.model_dump(),
                "finish_reason": "tool_calls",
                "tool_calls": ["propose_edit"],
                "max_tokens": 1024,
            },
        )
        tool_call = RunEvent(
            kind=EventKind.TOOL_CALL,
            run_id=run_id,
            agent="reviewer",
            goal="review the selection for bugs",
            usage=run_usage,
            duration_ms=2.5,
            data={"turn": n % 8 + 1, "tool": "propose_edit", "arguments": TOOL_ARGUMENTS},
        )
        t0 = now()
        reservation = budgeter.reserve(
            run_id=run_id, agent="reviewer", prompt_tokens=2100, max_tokens=1024
        )
        t1 = now()
        budgeter.commit(reservation, usage)
        t2 = now()
        store.append(model_call)
        t3 = now()
        store.append(tool_call)
        t4 = now()
        redact_event(tool_call)
        t5 = now()
        if n < warmup:
            continue
        record("reserve", t0, t1)
        record("commit", t1, t2)
        record("append", t2, t3)
        record("append", t3, t4)
        record("redact", t4, t5)
        record("per call", t0, t4)
    budgeter.close()
    store.close()
    return timings


def _bare_chat_call(calls: int) -> list[float] | None:
    """Milliseconds per non-streaming chat completion against the scripted local server."""
    try:
        from openai import AsyncOpenAI
        from tests.rig.scripted_openai import ScriptedOpenAI
    except ImportError:
        return None

    async def run(url: str) -> list[float]:
        client = AsyncOpenAI(base_url=url, api_key="x")
        samples = []
        for n in range(calls + 20):
            t0 = time.perf_counter()
            await client.chat.completions.create(
                model="scripted-model",
                messages=[{"role": "user", "content": "review this"}],
                max_tokens=64,
            )
            if n >= 20:
                samples.append((time.perf_counter() - t0) * 1e3)
        await client.close()
        return samples

    server = ScriptedOpenAI().start()
    try:
        return asyncio.run(run(server.url))
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="simulated model calls per setup")
    parser.add_argument("--chat-calls", type=int, default=300, help="bare chat calls to time")
    args = parser.parse_args(argv)
    console = Console()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(
        f"load average {load:.2f} on {os.cpu_count()} CPUs: wall-clock p99 includes waiting for "
        "a CPU and the disk; the cpu columns are this thread's own CPU time"
    )

    setups: list[tuple[str, str, bool]] = [
        ("WAL, synchronous=NORMAL", "NORMAL", False),
        ("WAL, NORMAL + LSP budget listener", "NORMAL", True),
        ("WAL, synchronous=FULL (fsync per event)", "FULL", False),
    ]
    chat = _bare_chat_call(args.chat_calls)
    chat_p50 = statistics.median(chat) if chat else None

    for title, synchronous, listener in setups:
        with tempfile.TemporaryDirectory() as tmp:
            timings = _simulate(Path(tmp), args.calls, synchronous=synchronous, listener=listener)
        table = Table(title=f"{title}: {args.calls} model calls, ms")
        table.add_column("step")
        for column in ("p50", "p99", "mean", "max", "cpu p50", "cpu p99"):
            table.add_column(column, justify="right")
        if chat_p50 is not None:
            table.add_column("p50 vs chat", justify="right")
        labels = {
            "reserve": "reserve",
            "commit": "commit",
            "append": "append (1 event)",
            "redact": "  of it: redaction",
            "per call": "whole call (r+c+2a)",
        }
        for step, label in labels.items():
            wall, cpu = timings[step]["wall"], timings[step]["cpu"]
            row = [
                label,
                f"{statistics.median(wall):.3f}",
                f"{_percentile(wall, 0.99):.3f}",
                f"{statistics.fmean(wall):.3f}",
                f"{max(wall):.2f}",
                f"{statistics.median(cpu):.3f}",
                f"{_percentile(cpu, 0.99):.3f}",
            ]
            if chat_p50 is not None:
                row.append(f"{statistics.median(wall) / chat_p50:.1%}")
            table.add_row(*row)
        console.print(table)
        events = [x for step in ("reserve", "commit", "append") for x in timings[step]["wall"]]
        p99 = _percentile(events, 0.99)
        verdict = "met" if p99 < 1.0 else "NOT met"
        console.print(
            f"goal < 1 ms p99 per event (reserve, commit, append): {verdict}, p99 {p99:.3f} ms\n"
        )

    if chat is None:
        console.print("bare chat call: skipped (tests/rig/scripted_openai.py or openai missing)")
    else:
        console.print(
            f"bare non-streaming chat call against the local scripted server ({len(chat)} calls): "
            f"p50 {statistics.median(chat):.2f} ms, p99 {_percentile(chat, 0.99):.2f} ms "
            "(a real provider is 100-1000x slower, so the overhead share there is far smaller)"
        )


if __name__ == "__main__":
    main()
