"""The team database next to the workspace's SQLite files (printed, not asserted).

A throwaway PostgreSQL cluster on disk (tests/rig/postgres.py, fsync on, as a team's server) and
SQLite files on the same disk. Five tables:

1. CPU and wall per model call at 32 runs in flight, through the real runtime (ledger and audit
   trail) against the scripted OpenAI server: agentls' own CPU, and the PostgreSQL server's.
   Counted while 32 are in flight (and, apart, over the whole run). Goal: PostgreSQL within 10 %
   of SQLite.
2. Usable share under contention, four processes sharing one limit (each run one 120-token
   call, 50 ms each). Goal: at least 90 %, never over.
3. Throughput on one shared limit (the row every call touches): reserve + commit pairs a second
   with 64 runs in flight across 4 processes and an instant model. Goal: at least 500 pairs/s.
4. How long a dead holder's reservation blocks others: killed on this machine (swept at once), and
   on another machine (its own pid namespace, so its lease has to run out; default lease).
5. Tables 1 and 3 with the server across a network: a relay on 127.0.0.1 (tests/rig/
   latency_relay.py) delays every byte 0.5 ms each way. There every round trip a call waits for,
   and every one the ledger's lock is held for, shows.

    .venv/bin/python tests/benchmarks/bench_team_store.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.rig.postgres import PostgresCluster, team_database  # noqa: E402

from agentls.core.budget import BudgetExceeded, TokenBudgeter  # noqa: E402
from agentls.core.events import Usage  # noqa: E402
from agentls.core.stores.pg_ledger import DEFAULT_LEASE_SECONDS  # noqa: E402

PROMPT, OUTPUT = 80, 40
PROCESSES = 4
# A team's database is rarely on the laptop: half of a 1 ms round trip (one zone of a cloud).
NETWORK_ONE_WAY_S = 0.0005
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "server"), str(ROOT)])}


def _server_cpu(pg: PostgresCluster) -> float:
    """CPU seconds used so far by the cluster's processes (postmaster and every backend)."""
    import psutil

    pid = int((pg.data / "postmaster.pid").read_text().split()[0])
    main = psutil.Process(pid)
    total = 0.0
    for p in [main, *main.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def _scripted_cpu(server: object) -> float:
    """CPU seconds the scripted model server's thread has used (it runs in this process: what
    stands for the network is not agentls' CPU)."""
    import psutil

    thread = getattr(server, "_thread", None)
    native = getattr(thread, "native_id", None)
    for t in psutil.Process().threads():
        if t.id == native:
            return float(t.user_time + t.system_time)
    return 0.0


@dataclass
class PerCall:
    """agentls' CPU ms and wall ms per model call: `steady` while `in_flight` runs are in
    flight (what the goal names), `whole` over the whole run, ramp-up and ramp-down included."""

    steady_cpu: float
    steady_wall: float
    whole_cpu: float
    whole_wall: float


def _runtime_per_call(url: str | None, calls: int = 256, in_flight: int = 32) -> PerCall:
    """`calls` explain runs, `in_flight` at a time (a new one starts as soon as one ends).

    The steady window runs from the `in_flight`-th run's end (the first ones all started at
    once) to the end that starts the last run (after it, fewer stay in flight): every call
    counted there ran with `in_flight` others."""
    from tests.rig.scripted_openai import ScriptedOpenAI, Text

    from agentls.core.engine import EngineSettings, build_runtime
    from agentls.core.events import RunEvent
    from agentls.core.parallel import ParallelTask, delegate_parallel
    from agentls.core.target import Target

    with tempfile.TemporaryDirectory() as tmp, ScriptedOpenAI() as server:
        server.latency = 0.02
        server.responder = lambda body: Text("ok", prompt_tokens=PROMPT, completion_tokens=OUTPUT)
        ws = Path(tmp)
        (ws / "two.py").write_text("def twice(x):\n    return 2 * x\n")
        settings = EngineSettings(
            model="scripted-model", base_url=server.url, api_key="sk-t", database_url=url
        )
        rt = build_runtime(ws, settings)

        def now() -> tuple[float, float]:
            """(agentls CPU s, wall s) so far; the scripted server's CPU is not agentls'."""
            return time.process_time() - _scripted_cpu(server), time.perf_counter()

        async def go() -> PerCall:
            task = ParallelTask(agent="explain", goal="explain", target=Target(path=ws / "two.py"))
            await delegate_parallel(rt, [task], max_parallel=1)  # warm up
            tasks = [
                ParallelTask(agent="explain", goal="e", target=Target(path=ws / "two.py"))
                for _ in range(calls)
            ]
            ends = 0  # runs ended so far
            marks: dict[int, tuple[float, float]] = {}

            def listen(event: RunEvent) -> None:
                nonlocal ends
                if event.is_terminal:
                    ends += 1
                    if ends in (in_flight, calls - in_flight):
                        marks[ends] = now()

            begin = now()
            await delegate_parallel(rt, tasks, max_parallel=in_flight, listener=listen)
            end = now()
            await rt.aclose()
            (cpu0, wall0), (cpu1, wall1) = marks[in_flight], marks[calls - in_flight]
            steady = calls - 2 * in_flight
            return PerCall(
                (cpu1 - cpu0) / steady * 1000, (wall1 - wall0) / steady * 1000,
                (end[0] - begin[0]) / calls * 1000, (end[1] - begin[1]) / calls * 1000,
            )  # fmt: skip

        return asyncio.run(go())


def _cpu_table(console: Console, pg: PostgresCluster, url: str, tries: int = 8) -> None:
    """Each try runs SQLite and PostgreSQL back to back, which one first alternating (the one run
    second tends to be measured a few points apart); the ratios are the median of the tries' own
    ratios, so that the machine speeding up or slowing down between tries (these machines do)
    cancels out."""
    calls = 256
    table = Table(
        title=f"per model call at 32 runs in flight (runtime, ledger and audit trail; agentls' "
        f"CPU, the server's): median of {tries} side-by-side pairs; vs SQLite: CPU, wall; whole "
        "run: the same with ramp-up and ramp-down"
    )
    for col in ("store", "CPU ms", "server CPU ms", "wall ms", "vs SQLite", "whole run"):
        table.add_column(col, justify="right")
    stores = [("SQLite files", None), ("PostgreSQL", url)]
    seen: dict[str, list[tuple[PerCall, float]]] = {label: [] for label, _ in stores}
    for k in range(tries):
        for label, target in stores if k % 2 == 0 else stores[::-1]:
            before = _server_cpu(pg)
            per_call = _runtime_per_call(target, calls=calls)
            server = (_server_cpu(pg) - before) / calls * 1000 if target else 0.0
            seen[label].append((per_call, server))
    pairs = list(zip(seen["SQLite files"], seen["PostgreSQL"], strict=True))

    def versus(of: Callable[[PerCall], float]) -> str:
        return f"{statistics.median(of(p) / of(s) for (s, _), (p, _) in pairs) - 1:+.0%}"

    for label, rows in seen.items():
        first = label == "SQLite files"
        table.add_row(
            label,
            f"{statistics.median(r.steady_cpu for r, _ in rows):.2f}",
            "—" if first else f"{statistics.median(s for _, s in rows):.2f}",
            f"{statistics.median(r.steady_wall for r, _ in rows):.2f}",
            "+0%, +0%" if first else
            f"{versus(lambda r: r.steady_cpu)}, {versus(lambda r: r.steady_wall)}",
            "+0%, +0%" if first else
            f"{versus(lambda r: r.whole_cpu)}, {versus(lambda r: r.whole_wall)}",
        )  # fmt: skip
    console.print(table)


async def _contend(url: str, runs: int, tag: str, go: Path, latency: float) -> tuple[int, int]:
    b = TokenBudgeter.for_workspace(go.parent, database_url=url)
    while not go.exists():
        await asyncio.sleep(0.005)

    async def one(i: int) -> int:
        made = 0
        for n in range(10**9 if latency == 0 else 1):
            try:
                r = await b.areserve(
                    run_id=f"{tag}-{i}-{n}", agent="bench", prompt_tokens=PROMPT, max_tokens=1024
                )
            except BudgetExceeded:
                break
            await asyncio.sleep(latency)  # the model call
            await b.acommit(r, Usage(input_tokens=PROMPT, output_tokens=min(OUTPUT, r.max_tokens)))
            made += 1
        return made

    made = await asyncio.gather(*(one(i) for i in range(runs)))
    b.close()
    return sum(made), sum(1 for m in made if m == 0)


def _child(url: str, runs: str, tag: str, go: str, latency: str) -> None:
    made, refused = asyncio.run(_contend(url, int(runs), tag, Path(go), float(latency)))
    print(made, refused, flush=True)


def _processes(url: str, limit: int, runs: int, latency: float) -> tuple[int, int, int, float]:
    """`runs` across 4 processes on one limit: (calls, refused runs, committed, wall s)."""
    with tempfile.TemporaryDirectory() as tmp:
        with TokenBudgeter.for_workspace(Path(tmp), database_url=url) as b:
            b.reset()
            b.set_limit(limit)
        go = Path(tmp) / "go"
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    url,
                    str(runs // PROCESSES),
                    f"p{k}",
                    str(go),
                    str(latency),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=ENV,
            )
            for k in range(PROCESSES)
        ]
        time.sleep(3.0)  # the interpreters start and open the ledger
        started = time.perf_counter()
        go.touch()
        made = refused = 0
        for p in procs:
            out, _ = p.communicate()
            m, r = (int(x) for x in out.split())
            made, refused = made + m, refused + r
        wall = time.perf_counter() - started
        with TokenBudgeter.for_workspace(Path(tmp), database_url=url) as b:
            used = b.snapshot().used
    return made, refused, used, wall


def _share_table(console: Console, url: str) -> None:
    table = Table(title="usable share: one 120-token call per run, 50 ms each, 4 processes")
    for col in ("limit", "runs", "calls", "committed / limit", "refused", "wall s"):
        table.add_column(col, justify="right")
    for limit, runs in ((1000, 16), (1500, 16), (500, 8)):
        made, refused, used, wall = _processes(url, limit, runs, 0.05)
        table.add_row(
            f"{limit:,}", str(runs), str(made), f"{used:,} ({used / limit:.0%})", str(refused),
            f"{wall:.2f}",
        )  # fmt: skip
    console.print(table)


def _throughput_table(console: Console, url: str) -> None:
    table = Table(title="one shared limit, 64 runs across 4 processes, instant model")
    for col in ("limit", "pairs", "committed / limit", "wall s", "pairs / s"):
        table.add_column(col, justify="right")
    limit = 120 * 6000  # about 6,000 calls: every run loops until the limit refuses it
    made, _, used, wall = _processes(url, limit, 64, 0.0)
    table.add_row(
        f"{limit:,}", f"{made:,}", f"{used:,} ({used / limit:.1%})", f"{wall:.2f}",
        f"{made / wall:,.0f}",
    )  # fmt: skip
    console.print(table)


_HOLDER = """
import sys, time
from pathlib import Path
from agentls.core.budget import TokenBudgeter
b = TokenBudgeter.for_workspace(Path(sys.argv[2]), database_url=sys.argv[1])
b.reserve(run_id="doomed", agent="bench", prompt_tokens=600, max_tokens=300)
print("holding", flush=True)
time.sleep(600)
"""


def _freed_after(url: str, elsewhere: bool) -> float:
    """Seconds from a holder's kill -9 until a waiting call gets the room it held."""
    with tempfile.TemporaryDirectory() as tmp:
        b = TokenBudgeter.for_workspace(Path(tmp), database_url=url)
        b.reset()
        b.set_limit(1000)
        prefix = ["unshare", "--pid", "--uts", "--fork", "--kill-child"] if elsewhere else []
        holder = subprocess.Popen(
            [*prefix, sys.executable, "-c", _HOLDER, url, tmp], stdout=subprocess.PIPE, text=True,
            env=ENV,
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        holder.kill()
        holder.wait()
        killed = time.perf_counter()
        r = asyncio.run(
            b.areserve(run_id="next", agent="bench", prompt_tokens=500, max_tokens=100,
                       wait_seconds=120)
        )  # fmt: skip
        freed = time.perf_counter() - killed
        b.release(r)
        b.close()
    return freed


def _dead_holder_table(console: Console, url: str) -> None:
    table = Table(title=f"a dead holder's reservation (default lease {DEFAULT_LEASE_SECONDS:g} s)")
    for col in ("holder", "freed after s"):
        table.add_column(col, justify="right")
    table.add_row("this machine, kill -9", f"{_freed_after(url, False):.2f}")
    if os.geteuid() == 0:
        table.add_row("another machine, kill -9", f"{_freed_after(url, True):.2f}")
    console.print(table)


def _network_table(console: Console, pg: PostgresCluster) -> None:
    """Tables 1 and 3 again with the server across a network (a 1 ms round trip), on a database
    of their own (the tables before spent the first one's limit)."""
    from tests.rig.latency_relay import LatencyRelay

    url = team_database(pg, "far")
    with LatencyRelay(pg.port, one_way_s=NETWORK_ONE_WAY_S) as relay:
        far = url.replace(f":{pg.port}/", f":{relay.port}/")
        console.print(
            f"[bold]the server across a network: {NETWORK_ONE_WAY_S * 2000:g} ms round trip"
        )
        _cpu_table(console, pg, far, tries=3)
        _throughput_table(console, far)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:7])
        return
    console = Console()
    with PostgresCluster.start() as pg:  # on disk, fsync on: as a team's server
        url = team_database(pg, "bench")
        _cpu_table(console, pg, url)
        _share_table(console, url)
        _throughput_table(console, url)
        _dead_holder_table(console, url)
        _network_table(console, pg)


if __name__ == "__main__":
    main()
