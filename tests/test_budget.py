"""TokenBudgeter: scopes, shrinking, persistence, dead reservations and the never-over-a-limit
invariant under parallel runs (hypothesis, asyncio tasks and threads).

Tests taking `backend` run twice: on the workspace's SQLite ledger and on a team's PostgreSQL
database (a throwaway cluster, tests/rig/postgres.py)."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.rig.eventually import aeventually
from tests.rig.postgres import PostgresCluster, empty_ledger

from agentls.core.budget import (
    DEFAULT_MIN_OUTPUT_TOKENS,
    BudgetExceeded,
    BudgetSnapshot,
    Reservation,
    TokenBudgeter,
)
from agentls.core.events import Usage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ledger(tmp_path: Path, backend: str | None) -> Iterator[TokenBudgeter]:
    b = TokenBudgeter.for_workspace(tmp_path)  # the team database when `backend` names one
    assert b.shared == (backend is not None)
    yield b
    b.close()


@contextlib.contextmanager
def another_process_writing(ledger: TokenBudgeter, url: str | None) -> Iterator[None]:
    """Another process holds the ledger's write lock until the block ends (SQLite's file lock,
    or the team database's ledger lock)."""
    if url is None:
        assert ledger.path is not None
        other = sqlite3.connect(str(ledger.path), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("COMMIT")
            other.close()
        return
    import psycopg

    from agentls.core.stores.pg_ledger import LEDGER_LOCK

    with psycopg.connect(url) as holder:  # one transaction, committed when the block ends
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK,))
        yield


def test_commit_replaces_reservation_with_reported_usage_by_part(ledger: TokenBudgeter) -> None:
    r = ledger.reserve(run_id="r1", agent="reviewer", prompt_tokens=120, max_tokens=400)
    assert (r.tokens, r.max_tokens) == (520, 400)
    held = ledger.snapshot()
    assert (held.used, held.reserved) == (0, 520)
    assert held.agents["reviewer"].reserved == 520

    ledger.commit(
        r,
        Usage(input_tokens=100, cached_input_tokens=60, output_tokens=50, reasoning_tokens=20),
    )
    snap = ledger.snapshot()
    assert (snap.used, snap.reserved, snap.limit, snap.remaining) == (150, 0, None, None)
    assert snap.usage == Usage(
        input_tokens=100, cached_input_tokens=60, output_tokens=50, reasoning_tokens=20
    )
    assert snap.agents["reviewer"].used == 150
    assert ledger.run_usage("r1").total == 150
    assert ledger.run_usage("unknown-run") == Usage()


def test_estimated_usage_stays_marked(ledger: TokenBudgeter) -> None:
    r = ledger.reserve(run_id="r1", agent="a", prompt_tokens=10, max_tokens=10)
    ledger.commit(r, Usage(input_tokens=10, output_tokens=5))
    r = ledger.reserve(run_id="r1", agent="a", prompt_tokens=10, max_tokens=10)
    ledger.commit(r, Usage(input_tokens=9, output_tokens=3, estimated=True))
    snap = ledger.snapshot()
    assert snap.usage.estimated and snap.agents["a"].usage.estimated
    assert snap.used == 27


def test_total_limit_refuses_the_call_and_says_how_to_raise_it(ledger: TokenBudgeter) -> None:
    ledger.set_limit(1000)
    r = ledger.reserve(run_id="r1", agent="a", prompt_tokens=300, max_tokens=300)
    ledger.commit(r, Usage(input_tokens=300, output_tokens=300))
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(run_id="r1", agent="a", prompt_tokens=500, max_tokens=300)
    exc = info.value
    assert exc.scope == "total"
    assert (exc.remaining, exc.limit) == (400, 1000)
    assert exc.needed == 532  # the prompt plus the smallest useful answer (32 by default)
    message = str(exc)
    assert "agentls budget set" in message and "400" in message and "1,000" in message
    # The refused call holds nothing.
    assert ledger.snapshot().reserved == 0


def test_the_tightest_scope_is_named(ledger: TokenBudgeter) -> None:
    ledger.set_limit(10_000)
    ledger.set_limit(500, agent="reviewer")
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(run_id="r1", agent="reviewer", prompt_tokens=480, max_tokens=100)
    assert info.value.scope == "agent:reviewer"
    assert info.value.agent == "reviewer"
    assert "--agent reviewer" in str(info.value)
    # Another agent is not held back by reviewer's limit.
    ledger.reserve(run_id="r2", agent="writer", prompt_tokens=480, max_tokens=100)

    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(
            run_id="r3", agent="writer", prompt_tokens=100, max_tokens=100, run_limit=120
        )
    assert info.value.scope == "run:r3" and info.value.run_id == "r3"
    assert "budget" in str(info.value)


def test_run_limit_is_remembered_for_the_runs_later_calls(ledger: TokenBudgeter) -> None:
    r = ledger.reserve(run_id="r1", agent="a", prompt_tokens=100, max_tokens=100, run_limit=300)
    ledger.commit(r, Usage(input_tokens=100, output_tokens=100))
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(run_id="r1", agent="a", prompt_tokens=100, max_tokens=100)
    assert info.value.scope == "run:r1" and info.value.remaining == 100
    assert ledger.run_snapshot("r1").limit == 300


def test_max_tokens_shrinks_when_a_useful_answer_still_fits(ledger: TokenBudgeter) -> None:
    ledger.set_limit(1000)
    r = ledger.reserve(run_id="r1", agent="a", prompt_tokens=700, max_tokens=1024)
    assert r.max_tokens == 300 and r.tokens == 1000
    ledger.release(r)
    # 968 + 32 = 1000 is the least that still leaves a useful (32-token) answer...
    r = ledger.reserve(run_id="r1", agent="a", prompt_tokens=968, max_tokens=1024)
    assert r.max_tokens == 32
    ledger.release(r)
    # ...one more prompt token and the call is not made.
    with pytest.raises(BudgetExceeded):
        ledger.reserve(run_id="r1", agent="a", prompt_tokens=969, max_tokens=1024)
    # The caller decides what "useful" means (`budget.minOutputTokens`).
    r = ledger.reserve(
        run_id="r1", agent="a", prompt_tokens=969, max_tokens=1024, min_output_tokens=16
    )
    assert r.max_tokens == 31
    ledger.release(r)
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(
            run_id="r1", agent="a", prompt_tokens=900, max_tokens=1024, min_output_tokens=128
        )
    assert info.value.needed == 1028


def test_release_frees_and_settled_reservations_cannot_be_reused(ledger: TokenBudgeter) -> None:
    ledger.set_limit(1000)
    r = ledger.reserve(run_id="r1", agent="a", prompt_tokens=500, max_tokens=500)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(run_id="r2", agent="a", prompt_tokens=500, max_tokens=500)
    ledger.release(r)
    assert ledger.snapshot().reserved == 0
    assert ledger.snapshot().used == 0
    r2 = ledger.reserve(run_id="r2", agent="a", prompt_tokens=500, max_tokens=500)
    ledger.commit(r2, Usage(input_tokens=400, output_tokens=100))
    ledger.release(r2)  # after a commit: nothing happens (try/finally friendly)
    assert ledger.snapshot().used == 500
    with pytest.raises(ValueError, match="already"):
        ledger.commit(r2, Usage(input_tokens=1))
    assert ledger.snapshot().used == 500


def test_set_none_is_unlimited_and_bad_limits_are_refused(ledger: TokenBudgeter) -> None:
    ledger.set_limit(10)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(run_id="r", agent="a", prompt_tokens=100, max_tokens=100)
    ledger.set_limit(None)
    ledger.reserve(run_id="r", agent="a", prompt_tokens=100, max_tokens=100)
    assert ledger.snapshot().limit is None
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            ledger.set_limit(bad)  # type: ignore[arg-type]


def test_reset_zeroes_usage_but_keeps_limits(ledger: TokenBudgeter) -> None:
    ledger.set_limit(5000)
    ledger.set_limit(2000, agent="a")
    for agent, used in (("a", 300), ("b", 200)):
        r = ledger.reserve(run_id=f"r-{agent}", agent=agent, prompt_tokens=used, max_tokens=10)
        ledger.commit(r, Usage(input_tokens=used))
    ledger.reset(agent="a")
    snap = ledger.snapshot()
    assert (snap.used, snap.agents["a"].used, snap.agents["b"].used) == (500, 0, 200)
    assert snap.agents["a"].limit == 2000
    ledger.reset()
    snap = ledger.snapshot()
    assert (snap.used, snap.agents["b"].used, snap.limit, snap.remaining) == (0, 0, 5000, 5000)


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit(9000)
        b.set_limit(3000, agent="reviewer")
        r = b.reserve(run_id="r1", agent="reviewer", prompt_tokens=100, max_tokens=100)
        b.commit(r, Usage(input_tokens=80, output_tokens=40))
    assert (tmp_path / ".agentls" / "ledger.db").is_file()
    with TokenBudgeter.for_workspace(tmp_path) as b:
        snap = b.snapshot()
        assert (snap.used, snap.limit, snap.remaining) == (120, 9000, 8880)
        assert snap.agents["reviewer"].limit == 3000
        assert b.run_usage("r1") == Usage(input_tokens=80, output_tokens=40)


def test_listeners_see_every_change(ledger: TokenBudgeter) -> None:
    seen: list[BudgetSnapshot] = []
    ledger.add_listener(seen.append)

    def broken(snapshot: BudgetSnapshot) -> None:
        raise RuntimeError("a broken listener does not break the budgeter")

    ledger.add_listener(broken)
    ledger.set_limit(1000)
    r = ledger.reserve(run_id="r", agent="a", prompt_tokens=10, max_tokens=10)
    ledger.commit(r, Usage(input_tokens=10, output_tokens=5))
    r = ledger.reserve(run_id="r", agent="a", prompt_tokens=10, max_tokens=10)
    ledger.release(r)
    ledger.reset()
    assert [(s.limit, s.used, s.reserved) for s in seen] == [
        (1000, 0, 0),
        (1000, 0, 20),
        (1000, 15, 0),
        (1000, 15, 20),
        (1000, 15, 0),
        (1000, 0, 0),
    ]


def test_child_runs_count_against_their_parent_run(ledger: TokenBudgeter) -> None:
    ledger.set_run_limit("parent", 1000)
    r = ledger.reserve(
        run_id="child",
        agent="helper",
        prompt_tokens=400,
        max_tokens=200,
        ancestor_run_ids=["parent"],
    )
    ledger.commit(r, Usage(input_tokens=400, output_tokens=200))
    assert ledger.run_usage("parent").total == 600
    assert ledger.run_usage("child").total == 600
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(
            run_id="child2",
            agent="helper",
            prompt_tokens=400,
            max_tokens=200,
            ancestor_run_ids=["parent"],
        )
    assert info.value.scope == "run:parent"


def test_in_memory_ledger(tmp_path: Path) -> None:
    with TokenBudgeter() as b:
        b.set_limit(100)
        r = b.reserve(run_id="r", agent="a", prompt_tokens=50, max_tokens=50)
        b.commit(r, Usage(input_tokens=50, output_tokens=50))
        assert b.snapshot().remaining == 0
    assert not list(tmp_path.iterdir())


_HOLD_AND_EXIT = """
import sys
from pathlib import Path
from agentls.core.budget import TokenBudgeter
b = TokenBudgeter.for_workspace(Path(sys.argv[1]))
b.reserve(run_id="ghost", agent="a", prompt_tokens=600, max_tokens=200)
print(b.snapshot().reserved, flush=True)
"""


def test_reservations_of_a_process_that_is_gone_are_dropped(
    tmp_path: Path, backend: str | None
) -> None:
    ledger = TokenBudgeter.for_workspace(tmp_path)
    ledger.set_limit(1000)
    # The child exits without committing or releasing: its 800 tokens stay in the ledger.
    out = subprocess.run(
        [sys.executable, "-c", _HOLD_AND_EXIT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "800"
    # A ledger opened earlier drops them once they would block a reservation...
    r = ledger.reserve(run_id="r", agent="a", prompt_tokens=500, max_tokens=400)
    assert r.max_tokens == 400
    ledger.release(r)
    subprocess.run([sys.executable, "-c", _HOLD_AND_EXIT, str(tmp_path)], check=True, stdout=-3)
    # ...and a ledger opened afterwards drops them at once.
    with TokenBudgeter.for_workspace(tmp_path) as fresh:
        assert fresh.snapshot().reserved == 0
    ledger.close()


# The invariant.

AGENTS = ("a", "b", "c")
MIN_OUT = 16

call_st = st.fixed_dictionaries(
    {
        "prompt": st.integers(0, 400),
        "max_tokens": st.integers(1, 500),
        "input_share": st.floats(0, 1),
        "cached_share": st.floats(0, 1),
        "output_share": st.floats(0, 1),
        "reasoning_share": st.floats(0, 1),
        "estimated": st.booleans(),
        "fails": st.sampled_from([False, False, False, True]),  # the call errors: release
        "yields": st.integers(0, 3),
    }
)
run_st = st.fixed_dictionaries(
    {
        "agent": st.sampled_from(AGENTS),
        "limit": st.none() | st.integers(0, 1500),
        "calls": st.lists(call_st, min_size=1, max_size=6),
    }
)
scenario_st = st.fixed_dictionaries(
    {
        "total": st.none() | st.integers(0, 4000),
        "agents": st.fixed_dictionaries({a: st.none() | st.integers(0, 2500) for a in AGENTS}),
        "runs": st.lists(run_st, min_size=1, max_size=8),
    }
)


def _usage_for(call: dict, max_tokens: int) -> Usage:
    """What a provider could report for a call that reserved prompt + max_tokens: never more."""
    inp = int(call["prompt"] * call["input_share"])
    out = int(max_tokens * call["output_share"])
    return Usage(
        input_tokens=inp,
        cached_input_tokens=int(inp * call["cached_share"]),
        output_tokens=out,
        reasoning_tokens=int(out * call["reasoning_share"]),
        estimated=call["estimated"],
    )


@dataclass
class Ledgerbook:
    """What the test itself saw the model report, to compare with what the ledger committed."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    total: Usage = field(default_factory=Usage)
    agents: dict[str, Usage] = field(default_factory=dict)
    runs: dict[str, Usage] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def record(self, agent: str, run_id: str, usage: Usage) -> None:
        with self.lock:
            self.total += usage
            self.agents[agent] = self.agents.get(agent, Usage()) + usage
            self.runs[run_id] = self.runs.get(run_id, Usage()) + usage


def _limits_listener(book: Ledgerbook, scenario: dict) -> Callable[[BudgetSnapshot], None]:
    def check(snap: BudgetSnapshot) -> None:
        scopes = [("total", snap, scenario["total"])] + [
            (f"agent:{a}", s, scenario["agents"][a]) for a, s in snap.agents.items()
        ]
        for name, scope, limit in scopes:
            if limit is None:
                continue
            if scope.used > limit:
                book.violations.append(f"{name} committed {scope.used} > limit {limit}")
            if scope.used + scope.reserved > limit:
                book.violations.append(f"{name} committed+reserved over limit {limit}")

    return check


def _check_totals(b: TokenBudgeter, book: Ledgerbook, scenario: dict) -> None:
    assert book.violations == []
    snap = b.snapshot()
    assert snap.reserved == 0
    assert snap.usage == book.total
    for agent in AGENTS:
        got = snap.agents[agent].usage if agent in snap.agents else Usage()
        assert got == book.agents.get(agent, Usage()), agent
        if scenario["agents"][agent] is not None:
            assert got.total <= scenario["agents"][agent]
    if scenario["total"] is not None:
        assert snap.used <= scenario["total"]
    for i, run in enumerate(scenario["runs"]):
        run_usage = b.run_usage(f"run{i}")
        assert run_usage == book.runs.get(f"run{i}", Usage())
        if run["limit"] is not None:
            assert run_usage.total <= run["limit"]


def _apply_limits(b: TokenBudgeter, scenario: dict) -> None:
    b.set_limit(scenario["total"])
    for agent, limit in scenario["agents"].items():
        b.set_limit(limit, agent=agent)


@contextlib.contextmanager
def _scenario_ledger(
    scenario: dict, url: str | None = None, pg: PostgresCluster | None = None
) -> Iterator[tuple[TokenBudgeter, Ledgerbook]]:
    """A fresh ledger (file, or emptied team database) with the scenario's limits, and the book
    its listener keeps."""
    with tempfile.TemporaryDirectory() as tmp:
        if url is not None and pg is not None:
            empty_ledger(pg, url)
        b = TokenBudgeter.for_workspace(Path(tmp), database_url=url)
        book = Ledgerbook()
        b.add_listener(_limits_listener(book, scenario))
        _apply_limits(b, scenario)
        try:
            yield b, book
        finally:
            b.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenario_st)
def test_parallel_async_runs_never_commit_over_a_limit(scenario: dict) -> None:
    with _scenario_ledger(scenario) as (b, book):

        async def run(i: int, spec: dict) -> None:
            run_id = f"run{i}"
            for call in spec["calls"]:
                try:
                    r = b.reserve(
                        run_id=run_id,
                        agent=spec["agent"],
                        prompt_tokens=call["prompt"],
                        max_tokens=call["max_tokens"],
                        run_limit=spec["limit"],
                        min_output_tokens=MIN_OUT,
                    )
                except BudgetExceeded as exc:
                    # Refused only when the named scope really could not cover the call, which
                    # the ledger shows right now (nothing else runs between reserve and here).
                    assert exc.remaining < exc.needed
                    if exc.scope == "total":
                        shown = b.snapshot().remaining
                    elif exc.agent is not None:
                        shown = b.snapshot().agents[exc.agent].remaining
                    else:
                        shown = b.run_snapshot(run_id).remaining
                    assert shown == exc.remaining
                    return  # the run ends with budget_exceeded
                assert MIN_OUT <= r.max_tokens <= call["max_tokens"] or (
                    r.max_tokens == call["max_tokens"] < MIN_OUT
                )
                for _ in range(call["yields"]):
                    await asyncio.sleep(0)  # other runs reserve while this call is "in flight"
                if call["fails"]:
                    b.release(r)
                    continue
                usage = _usage_for(call, r.max_tokens)
                b.commit(r, usage)
                book.record(spec["agent"], run_id, usage)

        async def main() -> None:
            await asyncio.gather(*(run(i, spec) for i, spec in enumerate(scenario["runs"])))

        asyncio.run(main())
        _check_totals(b, book, scenario)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenario_st)
def test_parallel_threads_with_their_own_connections_never_commit_over_a_limit(
    scenario: dict, backend: str | None, request: pytest.FixtureRequest
) -> None:
    if backend is not None:
        empty_ledger(request.getfixturevalue("postgres_cluster"), backend)
    with tempfile.TemporaryDirectory() as tmp:
        main_ledger = TokenBudgeter.for_workspace(Path(tmp), database_url=backend)
        _apply_limits(main_ledger, scenario)
        book = Ledgerbook()
        errors: list[BaseException] = []
        start = threading.Barrier(len(scenario["runs"]))

        def run(i: int, spec: dict) -> None:
            # One budgeter per thread: its own connection, as a separate process would have.
            b = TokenBudgeter.for_workspace(Path(tmp), database_url=backend)
            b.add_listener(_limits_listener(book, scenario))
            try:
                start.wait()
                for call in spec["calls"]:
                    try:
                        r = b.reserve(
                            run_id=f"run{i}",
                            agent=spec["agent"],
                            prompt_tokens=call["prompt"],
                            max_tokens=call["max_tokens"],
                            run_limit=spec["limit"],
                            min_output_tokens=MIN_OUT,
                        )
                    except BudgetExceeded:
                        return
                    if call["fails"]:
                        b.release(r)
                        continue
                    usage = _usage_for(call, r.max_tokens)
                    b.commit(r, usage)
                    book.record(spec["agent"], f"run{i}", usage)
            except BaseException as exc:
                errors.append(exc)
            finally:
                b.close()

        threads = [
            threading.Thread(target=run, args=(i, spec)) for i, spec in enumerate(scenario["runs"])
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        _check_totals(main_ledger, book, scenario)
        main_ledger.close()


def test_one_budgeter_shared_by_many_threads(tmp_path: Path) -> None:
    b = TokenBudgeter.for_workspace(tmp_path)
    b.set_limit(50_000)
    book = Ledgerbook()

    def worker(n: int) -> None:
        for i in range(200):
            try:
                r = b.reserve(run_id=f"t{n}", agent=AGENTS[n % 3], prompt_tokens=90, max_tokens=60)
            except BudgetExceeded:
                return
            # A model never writes more than the max_tokens it was granted (near the limit the
            # grant shrinks to what is left).
            usage = Usage(input_tokens=80, output_tokens=min(i % 60, r.max_tokens))
            b.commit(r, usage)
            book.record(AGENTS[n % 3], f"t{n}", usage)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = b.snapshot()
    assert snap.usage == book.total
    assert snap.used <= 50_000
    # The limit, not luck, stopped the threads: less than one call's reservation is left.
    assert snap.remaining is not None and snap.remaining < 90 + DEFAULT_MIN_OUTPUT_TOKENS
    b.close()


def test_budget_exceeded_survives_pickling() -> None:
    # Raised in a child agentls process, it may cross a process boundary.
    exc = BudgetExceeded("agent:reviewer", 564, 400, 1000, 120)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.scope, copy.needed, copy.remaining, copy.limit, copy.in_flight) == (
        "agent:reviewer",
        564,
        400,
        1000,
        120,
    )
    assert str(copy) == str(exc)


# Contention: runs wait for calls in flight instead of refusing each other.

PROMPT, OUTPUT = 80, 40  # a "120-token call": an 80-token prompt, a 40-token answer


async def _call(b: TokenBudgeter, run_id: str, **kw: object) -> bool:
    """One model call of a run: reserve (waiting if need be), "call", commit what it used.

    Like a real model, it answers 40 tokens or `max_tokens`, whichever is fewer.
    """
    try:
        r = await b.areserve(
            run_id=run_id,
            agent="a",
            prompt_tokens=PROMPT,
            max_tokens=1024,
            **kw,  # type: ignore[arg-type]
        )
    except BudgetExceeded:
        return False
    assert r.max_tokens >= DEFAULT_MIN_OUTPUT_TOKENS
    await asyncio.sleep(0)  # other runs reserve while this call is in flight
    await b.acommit(r, Usage(input_tokens=PROMPT, output_tokens=min(OUTPUT, r.max_tokens)))
    return True


@pytest.mark.parametrize(("limit", "runs", "calls"), [(1000, 16, 8), (500, 8, 4)])
async def test_parallel_runs_wait_for_calls_in_flight_and_use_90_percent_of_the_budget(
    ledger: TokenBudgeter, limit: int, runs: int, calls: int
) -> None:
    ledger.set_limit(limit)
    made = await asyncio.gather(*(_call(ledger, f"r{i}") for i in range(runs)))
    snap = ledger.snapshot()
    assert sum(made) == calls
    assert 0.9 * limit <= snap.used <= limit
    # Refused only when committed spend left no room for one more minimal call (80 + 32).
    assert limit - snap.used < PROMPT + DEFAULT_MIN_OUTPUT_TOKENS
    assert snap.reserved == 0


async def test_the_last_tokens_of_a_budget_go_whole_to_one_waiting_call(
    ledger: TokenBudgeter,
) -> None:
    ledger.set_limit(500)
    for i in range(3):
        r = ledger.reserve(run_id=f"done{i}", agent="a", prompt_tokens=PROMPT, max_tokens=40)
        ledger.commit(r, Usage(input_tokens=PROMPT, output_tokens=OUTPUT))
    held = ledger.reserve(run_id="held", agent="a", prompt_tokens=0, max_tokens=140)
    waiting = [
        asyncio.create_task(
            ledger.areserve(run_id=f"w{i}", agent="a", prompt_tokens=PROMPT, max_tokens=1024)
        )
        for i in range(5)
    ]
    await aeventually(lambda: _waiters(ledger) == 5)
    await ledger.arelease(held)
    # 140 left: one 80-token prompt with a 60-token answer, not five slices of 28 that serve none.
    first = await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(_first(waiting))), 5)
    assert (first.tokens, first.max_tokens) == (140, 60)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    await ledger.asettled()
    assert ledger.snapshot().reserved == 140 and _waiters(ledger) == 0
    ledger.release(first)


async def _first(tasks: list[asyncio.Task[Reservation]]) -> Reservation:
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    return next(iter(done)).result()


async def test_the_minimum_answer_is_the_callers_to_choose(ledger: TokenBudgeter) -> None:
    ledger.set_limit(500)
    for i in range(3):
        r = ledger.reserve(run_id=f"done{i}", agent="a", prompt_tokens=PROMPT, max_tokens=40)
        ledger.commit(r, Usage(input_tokens=PROMPT, output_tokens=OUTPUT))
    # 140 left: a run that needs at least 64 output tokens is refused at once, without waiting.
    with pytest.raises(BudgetExceeded) as info:
        await ledger.areserve(
            run_id="r", agent="a", prompt_tokens=PROMPT, max_tokens=1024, min_output_tokens=64
        )
    assert info.value.needed == 144 and info.value.waited == 0
    r = await ledger.areserve(
        run_id="r", agent="a", prompt_tokens=PROMPT, max_tokens=1024, min_output_tokens=60
    )
    assert r.max_tokens == 60


async def test_a_thousand_token_budget_serves_eight_120_token_calls_at_90_percent(
    ledger: TokenBudgeter,
) -> None:
    ledger.set_limit(1000)
    await asyncio.gather(*(_call(ledger, f"r{i}") for i in range(16)))
    assert 900 <= ledger.snapshot().used <= 1000


_CONTEND = """
import asyncio, sys, time
from pathlib import Path
from agentls.core.budget import BudgetExceeded, TokenBudgeter
from agentls.core.events import Usage

async def main() -> None:
    b = TokenBudgeter.for_workspace(Path(sys.argv[1]))  # AGENTLS_DATABASE_URL: the team's
    go = Path(sys.argv[2])
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go.exists():
        assert time.monotonic() < deadline, "the test never said go"
        await asyncio.sleep(0.01)

    async def call(i: int) -> bool:
        try:
            r = await b.areserve(run_id=f"{sys.argv[3]}-{i}", agent="a", prompt_tokens=80,
                                 max_tokens=1024)
        except BudgetExceeded:
            return False
        await asyncio.sleep(0.01)
        await b.acommit(r, Usage(input_tokens=80, output_tokens=min(40, r.max_tokens)))
        return True

    made = await asyncio.gather(*(call(i) for i in range(int(sys.argv[4]))))
    print(sum(made), flush=True)
    b.close()

asyncio.run(main())
"""


@pytest.mark.parametrize(("limit", "runs", "calls"), [(1000, 16, 8), (500, 8, 4)])
def test_runs_in_four_processes_wait_for_each_other_and_use_90_percent_of_the_budget(
    tmp_path: Path, limit: int, runs: int, calls: int, backend: str | None
) -> None:
    path = tmp_path  # the workspace: its ledger file, or the team database
    with TokenBudgeter.for_workspace(path) as b:
        b.set_limit(limit)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTEND, str(path), str(go), f"p{n}", str(runs // 4)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()  # the runs of 4 processes start together
    made = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    with TokenBudgeter.for_workspace(path) as b:
        snap = b.snapshot()
    assert sum(made) == calls
    assert 0.9 * limit <= snap.used <= limit and snap.reserved == 0


async def test_a_call_that_cannot_fit_in_committed_spend_is_refused_at_once(
    ledger: TokenBudgeter,
) -> None:
    ledger.set_limit(1000)
    held = ledger.reserve(run_id="r0", agent="a", prompt_tokens=100, max_tokens=300)
    done = ledger.reserve(run_id="r1", agent="a", prompt_tokens=500, max_tokens=100)
    ledger.commit(done, Usage(input_tokens=500, output_tokens=100))
    # 400 committed-free < 500 + 32: no settle could make room, so no wait (not even 1 s).
    with pytest.raises(BudgetExceeded) as info:
        await ledger.areserve(
            run_id="r2", agent="a", prompt_tokens=500, max_tokens=100, wait_seconds=3600
        )
    assert info.value.waited == 0 and "waited" not in str(info.value)
    ledger.release(held)


async def test_a_call_waits_for_a_reservation_in_flight_then_runs(ledger: TokenBudgeter) -> None:
    ledger.set_limit(1000)
    held = ledger.reserve(run_id="r0", agent="a", prompt_tokens=100, max_tokens=900)
    waiting = asyncio.create_task(
        ledger.areserve(run_id="r1", agent="a", prompt_tokens=100, max_tokens=500)
    )
    await aeventually(lambda: _waiters(ledger) == 1)
    assert not waiting.done()
    await ledger.acommit(held, Usage(input_tokens=100, output_tokens=50))
    granted = await waiting
    assert granted.max_tokens == 500
    assert _waiters(ledger) == 0


async def test_a_wait_is_bounded_and_the_refusal_says_it_waited(ledger: TokenBudgeter) -> None:
    ledger.set_limit(1000)
    held = ledger.reserve(run_id="r0", agent="a", prompt_tokens=100, max_tokens=900)
    with pytest.raises(BudgetExceeded) as info:
        await ledger.areserve(
            run_id="r1", agent="a", prompt_tokens=100, max_tokens=500, wait_seconds=0.2
        )
    assert info.value.waited >= 0.2
    assert "waited" in str(info.value) and "calls in flight" in str(info.value)
    assert _waiters(ledger) == 0
    ledger.release(held)


async def test_cancelling_a_waiting_call_leaves_nothing_behind(ledger: TokenBudgeter) -> None:
    ledger.set_limit(1000)
    held = ledger.reserve(run_id="r0", agent="a", prompt_tokens=100, max_tokens=900)
    waiting = asyncio.create_task(
        ledger.areserve(run_id="r1", agent="a", prompt_tokens=100, max_tokens=500)
    )
    await aeventually(lambda: _waiters(ledger) == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert _waiters(ledger) == 0
    ledger.release(held)
    assert ledger.snapshot().reserved == 0


async def test_waiting_runs_get_a_fair_share_not_the_whole_rest(ledger: TokenBudgeter) -> None:
    ledger.set_limit(1000)
    held = ledger.reserve(run_id="r0", agent="a", prompt_tokens=100, max_tokens=900)
    waiting = [
        asyncio.create_task(
            ledger.areserve(run_id=f"w{i}", agent="a", prompt_tokens=100, max_tokens=1024)
        )
        for i in range(3)
    ]
    await aeventually(lambda: _waiters(ledger) == 3)
    await ledger.arelease(held)
    grants = await asyncio.gather(*waiting)
    # All three fit at once; nobody took the whole 1,000 and left the others waiting.
    assert sum(g.tokens for g in grants) <= 1000
    assert all(g.max_tokens >= DEFAULT_MIN_OUTPUT_TOKENS for g in grants)
    assert ledger.snapshot().reserved == sum(g.tokens for g in grants)


async def test_a_reserve_cancelled_while_the_ledger_is_busy_does_not_leak(
    ledger: TokenBudgeter, backend: str | None
) -> None:
    ledger.set_limit(1000)
    # Another process holds the ledger's write lock: the reserve waits for it.
    with another_process_writing(ledger, backend):
        reserving = asyncio.create_task(
            ledger.areserve(run_id="r", agent="a", prompt_tokens=10, max_tokens=10)
        )
        for _ in range(20):
            await asyncio.sleep(0)  # the event loop keeps running while the ledger is busy
        assert not reserving.done()
        reserving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reserving
    await ledger.asettled()  # the worker thread granted it after the cancel, then released it
    snap = await ledger.asnapshot()
    assert snap.reserved == 0


def _waiters(b: TokenBudgeter) -> int:
    return b.waiting_calls()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenario_st)
def test_runs_that_wait_for_each_other_never_commit_over_a_limit(
    scenario: dict, backend: str | None, request: pytest.FixtureRequest
) -> None:
    pg = request.getfixturevalue("postgres_cluster") if backend is not None else None
    with _scenario_ledger(scenario, backend, pg) as (b, book):

        async def run(i: int, spec: dict) -> None:
            run_id = f"run{i}"
            for call in spec["calls"]:
                try:
                    r = await b.areserve(
                        run_id=run_id,
                        agent=spec["agent"],
                        prompt_tokens=call["prompt"],
                        max_tokens=call["max_tokens"],
                        run_limit=spec["limit"],
                        min_output_tokens=MIN_OUT,
                        wait_seconds=0.5,
                    )
                except BudgetExceeded as exc:
                    assert exc.remaining < exc.needed
                    return
                assert MIN_OUT <= r.max_tokens <= call["max_tokens"] or (
                    r.max_tokens == call["max_tokens"] < MIN_OUT
                )
                for _ in range(call["yields"]):
                    await asyncio.sleep(0)
                if call["fails"]:
                    await b.arelease(r)
                    continue
                usage = _usage_for(call, r.max_tokens)
                await b.acommit(r, usage)
                book.record(spec["agent"], run_id, usage)

        async def main() -> None:
            await asyncio.gather(*(run(i, spec) for i, spec in enumerate(scenario["runs"])))
            await b.asettled()

        asyncio.run(main())
        _check_totals(b, book, scenario)
        assert _waiters(b) == 0


async def test_a_reserve_cancelled_while_it_joins_the_queue_leaves_no_waiter(
    ledger: TokenBudgeter, backend: str | None
) -> None:
    ledger.set_limit(1000)
    held = ledger.reserve(run_id="r0", agent="a", prompt_tokens=100, max_tokens=900)
    with another_process_writing(ledger, backend):  # the attempt blocks inside the database
        reserving = asyncio.create_task(
            ledger.areserve(run_id="r1", agent="a", prompt_tokens=100, max_tokens=500)
        )
        for _ in range(20):
            await asyncio.sleep(0)
        reserving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reserving
    await ledger.asettled()  # the attempt joined the queue after the cancel, then left it
    assert _waiters(ledger) == 0
    ledger.release(held)


async def test_a_call_that_does_not_wait_leaves_no_place_in_the_queue(
    ledger: TokenBudgeter,
) -> None:
    ledger.set_limit(1000)
    held = ledger.reserve(run_id="r0", agent="a", prompt_tokens=100, max_tokens=900)
    with pytest.raises(BudgetExceeded) as info:
        await ledger.areserve(
            run_id="r1", agent="a", prompt_tokens=100, max_tokens=500, wait_seconds=0
        )
    assert info.value.in_flight == 1000
    assert _waiters(ledger) == 0
    ledger.release(held)
