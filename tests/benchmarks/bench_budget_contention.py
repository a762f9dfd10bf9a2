"""How much of a budget parallel runs get to use (printed, not asserted).

Each run makes one 120-token call (80 prompt + 40 output; it asks for max_tokens 1024, is granted
at least the default minimum answer of 32, and like a real model answers 40 tokens or max_tokens,
whichever is fewer). Demand exceeds the limit, so some runs must be refused; the question is how
many calls are made and how much of the limit is committed (the goal: at least 90 %, never over). `no wait` is the old behaviour (a run whose
reservation does not fit next to the ones in flight is refused at once); `wait` is `areserve`.
Runs share one ledger file, in one process (asyncio tasks) or in several processes.

The second table is the ledger's own CPU per model call (one reserve and one commit, from async
code as the runtime makes them) at 1 and 32 calls in flight, with and without a listener (the
language server attaches one).

The last table runs the real runtime against the scripted OpenAI server: 16 `explain` runs with
a total limit, once counting the prompt by UTF-8 bytes (an unknown model name) and once exactly
(an OpenAI model name, bpe-openai).

    .venv/bin/python tests/benchmarks/bench_budget_contention.py
"""

from __future__ import annotations

import asyncio
import subprocess
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

from agentls.core.budget import BudgetExceeded, TokenBudgeter  # noqa: E402
from agentls.core.events import Usage  # noqa: E402

PROMPT, OUTPUT, LATENCY = 80, 40, 0.05
SCENARIOS = ((1000, 16), (500, 8))
PROCESSES = 4


async def _runs(
    ledger: Path, n: int, wait: float, tag: str, go: Path | None = None
) -> tuple[int, int]:
    """n runs of one call each (once `go` exists); returns (calls made, refused)."""
    b = TokenBudgeter(ledger)
    while go is not None and not go.exists():
        await asyncio.sleep(0.005)

    async def one(i: int) -> bool:
        try:
            r = await b.areserve(
                run_id=f"{tag}-{i}",
                agent="bench",
                prompt_tokens=PROMPT,
                max_tokens=1024,
                wait_seconds=wait,
            )
        except BudgetExceeded:
            return False
        await asyncio.sleep(LATENCY)  # the model call
        await b.acommit(r, Usage(input_tokens=PROMPT, output_tokens=min(OUTPUT, r.max_tokens)))
        return True

    made = await asyncio.gather(*(one(i) for i in range(n)))
    b.close()
    return sum(made), n - sum(made)


def _child(ledger: str, n: str, wait: str, tag: str, go: str) -> None:
    made, refused = asyncio.run(_runs(Path(ledger), int(n), float(wait), tag, Path(go)))
    print(made, refused, flush=True)


def _scenario(limit: int, runs: int, wait: float, processes: int) -> tuple[int, int, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.db"
        with TokenBudgeter(ledger) as b:
            b.set_limit(limit)
        started = time.perf_counter()
        if processes == 1:
            made, refused = asyncio.run(_runs(ledger, runs, wait, "p0"))
        else:
            go = Path(tmp) / "go"
            per = runs // processes
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(ledger),
                        str(per),
                        str(wait),
                        f"p{k}",
                        str(go),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for k in range(processes)
            ]
            time.sleep(2.0)  # let the interpreters start and open the ledger
            started = time.perf_counter()
            go.touch()
            made = refused = 0
            for p in procs:
                out, _ = p.communicate()
                m, r = (int(x) for x in out.split())
                made, refused = made + m, refused + r
        wall = time.perf_counter() - started
        with TokenBudgeter(ledger) as b:
            used = b.snapshot().used
    return made, refused, used, wall


async def _ledger_cpu(in_flight: int, calls: int, listener: bool) -> tuple[float, float]:
    """CPU ms of this process per reserve + commit, and transactions per model call."""
    with tempfile.TemporaryDirectory() as tmp:
        b = TokenBudgeter(Path(tmp) / "ledger.db")
        b.set_limit(10**12)
        b.set_limit(10**12, agent="bench")
        if listener:
            b.add_listener(lambda snapshot: None)
        per = calls // in_flight

        async def worker(w: int) -> None:
            for i in range(per):
                r = await b.areserve(
                    run_id=f"w{w}-{i // 2}",
                    agent="bench",
                    prompt_tokens=PROMPT,
                    max_tokens=200,
                    run_limit=10**9,
                )
                await asyncio.sleep(0.001)  # the model call
                await b.acommit(r, Usage(input_tokens=PROMPT, output_tokens=OUTPUT))

        started = time.process_time()
        await asyncio.gather(*(worker(w) for w in range(in_flight)))
        cpu = time.process_time() - started
        batches = b.batches
        b.close()
    made = per * in_flight
    return cpu / made * 1000, batches / made


def _ledger_table(console: Console) -> None:
    table = Table(title="ledger CPU per model call (one reserve + one commit), 2,000 calls")
    for col in ("in flight", "listener", "CPU ms / call", "transactions / call"):
        table.add_column(col, justify="right")
    for in_flight, listener in ((1, False), (32, False), (32, True)):
        cpu, tx = asyncio.run(_ledger_cpu(in_flight, 2000, listener))
        table.add_row(str(in_flight), "yes" if listener else "no", f"{cpu:.3f}", f"{tx:.2f}")
    console.print(table)


def _runtime_table(console: Console) -> None:
    from tests.rig.scripted_openai import ScriptedOpenAI, Text

    from agentls.core.engine import EngineSettings, build_runtime
    from agentls.core.events import RunStatus
    from agentls.core.parallel import ParallelTask, delegate_parallel
    from agentls.core.runtime import AgentRuntime
    from agentls.core.target import Target

    table = Table(title="runtime: 16 explain runs on a two-line file, total limit 1,000")
    for col in ("prompt count", "calls", "committed / limit", "refused", "wall s"):
        table.add_column(col, justify="right")
    for label, model in (("UTF-8 bytes", "scripted-model"), ("exact (o200k)", "gpt-4o-mini")):
        with tempfile.TemporaryDirectory() as tmp, ScriptedOpenAI(models=(model,)) as server:
            server.latency = LATENCY
            server.responder = lambda body: Text("It doubles x.", completion_tokens=OUTPUT)
            ws = Path(tmp)
            (ws / "two.py").write_text("def twice(x):\n    return 2 * x\n")
            settings = EngineSettings(
                model=model, base_url=server.url, api_key="sk-test", max_output_tokens=1024
            )
            rt = build_runtime(ws, settings)
            rt.budgeter.set_limit(1000)

            async def go(rt: AgentRuntime = rt, ws: Path = ws) -> tuple[int, int, float]:
                started = time.perf_counter()
                tasks = [
                    ParallelTask(agent="explain", goal="explain", target=Target(path=ws / "two.py"))
                    for _ in range(16)
                ]
                result = await delegate_parallel(rt, tasks, max_parallel=16)
                await rt.aclose()
                done = sum(r.status is RunStatus.FINISHED for r in result.results)
                refused = sum(r.status is RunStatus.BUDGET_EXCEEDED for r in result.results)
                return done, refused, time.perf_counter() - started

            done, refused, wall = asyncio.run(go())
            with TokenBudgeter.for_workspace(ws) as b:
                used = b.snapshot().used
            table.add_row(label, str(done), f"{used:,} / 1,000", str(refused), f"{wall:.2f}")
    console.print(table)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:7])
        return
    console = Console()
    table = Table(title=f"one {PROMPT + OUTPUT}-token call per run, {LATENCY * 1000:.0f} ms each")
    for col in (
        "limit",
        "runs",
        "processes",
        "mode",
        "calls",
        "committed / limit",
        "refused",
        "wall s",
    ):
        table.add_column(col, justify="right")
    for limit, runs in SCENARIOS:
        for processes in (1, PROCESSES):
            for mode, wait in (("no wait", 0.0), ("wait", 60.0)):
                made, refused, used, wall = _scenario(limit, runs, wait, processes)
                table.add_row(
                    f"{limit:,}", str(runs), str(processes), mode, str(made),
                    f"{used:,} ({used / limit:.0%})", str(refused), f"{wall:.2f}",
                )  # fmt: skip
    console.print(table)
    _ledger_table(console)
    _runtime_table(console)


if __name__ == "__main__":
    main()
