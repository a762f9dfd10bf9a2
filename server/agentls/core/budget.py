"""TokenBudgeter: hard token limits per run, per agent and for the whole workspace.

Before every model call the runtime reserves `prompt + max_tokens` against each scope that applies
(`run:<id>`, `agent:<name>`, `total`, and any ancestor runs of a child run) in one SQLite
transaction taken with BEGIN IMMEDIATE, so the check and the reservation are atomic across threads
and processes. After the call the reservation is replaced by the provider-reported usage. Because
a reservation only succeeds when `limit - committed - reserved` covers it, and usage is at most what
was reserved (the prompt estimate is an upper bound, see DESIGN.md), committed usage never exceeds
a limit however many runs and processes share the ledger.

A call is refused only when committed spend leaves no room for its minimum (prompt plus the
smallest useful answer). When other calls' reservations are what is in the way, `areserve` waits
for them to settle (cancellable, bounded by `wait_seconds`), polling the ledger with backoff so
that runs in other processes are seen too; while runs wait, grants shrink to a fair share of what
is left (never below the minimum), so waiting runs share the budget instead of refusing each other.

Async code uses the `a*` methods: every SQLite transaction then runs on a worker thread, so a busy
ledger never stalls the event loop, and a reservation granted after its caller was cancelled is
released.

The ledger lives at `<workspace>/.agentls/ledger.db` (WAL), so totals survive restarts.
Reservations carry the owning process's pid and start time; those of a process that died (kill -9)
are dropped when a ledger is opened and whenever they would block a reservation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agentls.core.events import Usage
from agentls.core.sqlite import SqliteFile, process_alive, process_start_ticks, state_dir

log = logging.getLogger(__name__)

TOTAL = "total"
LEDGER_FILE = "ledger.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (
    scope     TEXT PRIMARY KEY,            -- 'total', 'agent:<name>', 'run:<id>'
    lim       INTEGER,                     -- NULL: unlimited
    input     INTEGER NOT NULL DEFAULT 0,  -- committed usage, by part
    cached    INTEGER NOT NULL DEFAULT 0,
    output    INTEGER NOT NULL DEFAULT 0,
    reasoning INTEGER NOT NULL DEFAULT 0,
    estimated INTEGER NOT NULL DEFAULT 0,  -- 1 once any committed part was estimated
    updated   REAL
);
CREATE TABLE IF NOT EXISTS reservations (
    id        TEXT PRIMARY KEY,
    run_id    TEXT NOT NULL,
    agent     TEXT NOT NULL,
    tokens    INTEGER NOT NULL,
    pid       INTEGER NOT NULL,
    pid_start TEXT,                        -- process start time: tells a reused pid apart
    created   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reserved (
    scope  TEXT NOT NULL,
    res_id TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (scope, res_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reserved_by_res ON reserved (res_id);
CREATE TABLE IF NOT EXISTS waiters (       -- calls waiting for in-flight reservations to settle
    scope     TEXT NOT NULL,
    id        TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    pid_start TEXT,
    since     REAL NOT NULL,
    PRIMARY KEY (scope, id)
) WITHOUT ROWID;
"""

# How long a call waits for other calls' reservations to settle before it is refused.
DEFAULT_WAIT_SECONDS = 60.0
_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.25


class BudgetExceeded(Exception):
    """A model call was refused because a scope's remaining budget cannot cover it.

    `needed` is the least the call needed (prompt plus the smallest useful answer), `remaining`
    what the tightest scope had left, `limit` that scope's limit, `in_flight` the tokens other
    calls held in it at the time.
    """

    def __init__(
        self,
        scope: str,
        needed: int,
        remaining: int,
        limit: int,
        in_flight: int = 0,
        waited: float = 0.0,
        *,
        waitable: bool = False,
    ) -> None:
        self.scope = scope
        self.needed = needed
        self.remaining = max(0, remaining)
        self.limit = limit
        self.in_flight = in_flight
        # Seconds the call waited for in-flight calls to settle before it gave up.
        self.waited = waited
        # Committed spend leaves room: only reservations in flight are in the way.
        self.waitable = waitable
        super().__init__(self._message())

    def __reduce__(
        self,
    ) -> tuple[Callable[..., BudgetExceeded], tuple[str, int, int, int, int, float, bool]]:
        return (
            _rebuild_budget_exceeded,
            (
                self.scope,
                self.needed,
                self.remaining,
                self.limit,
                self.in_flight,
                self.waited,
                self.waitable,
            ),
        )

    @property
    def agent(self) -> str | None:
        return self.scope.removeprefix("agent:") if self.scope.startswith("agent:") else None

    @property
    def run_id(self) -> str | None:
        return self.scope.removeprefix("run:") if self.scope.startswith("run:") else None

    def _message(self) -> str:
        need = f"the next model call needs at least {self.needed:,} tokens"
        held = f", {self.in_flight:,} more held by calls in flight," if self.in_flight else ""
        left = f"only {self.remaining:,}{held} of"
        waited = (
            f" (waited {self.waited:.3g} s for calls in flight to settle)"
            if self.waited > 0
            else ""
        )
        if self.scope == TOTAL:
            return (
                f"Workspace token budget exhausted: {need} but {left} the {self.limit:,}-token "
                f"total remain{waited}; raise it with `agentls budget set N` or start over with "
                "`agentls budget reset`."
            )
        if (agent := self.agent) is not None:
            return (
                f"Token budget of agent '{agent}' exhausted: {need} but {left} its "
                f"{self.limit:,}-token limit remain{waited}; raise it with "
                f"`agentls budget set N --agent {agent}` or start over with "
                f"`agentls budget reset --agent {agent}`."
            )
        return (
            f"Token budget of run {self.run_id} exhausted: {need} but {left} the run's "
            f"{self.limit:,}-token budget remain{waited}; raise the agent's `budget:` in its "
            "definition or pass a larger budget for the run."
        )


def _rebuild_budget_exceeded(
    scope: str,
    needed: int,
    remaining: int,
    limit: int,
    in_flight: int,
    waited: float,
    waitable: bool,
) -> BudgetExceeded:
    return BudgetExceeded(scope, needed, remaining, limit, in_flight, waited, waitable=waitable)


@dataclass(eq=False)
class Reservation:
    """Tokens held for one model call until `commit` or `release`.

    `max_tokens` is what the caller must pass to the model: it may be smaller than requested when
    the budget only covered a shrunk answer.
    """

    id: str
    run_id: str
    agent: str
    tokens: int
    max_tokens: int
    prompt_tokens: int
    scopes: tuple[str, ...]
    settled: bool = field(default=False, repr=False)


class BudgetScopeSnapshot(BaseModel):
    used: int
    limit: int | None
    remaining: int | None
    reserved: int
    usage: Usage


class BudgetSnapshot(BaseModel):
    used: int
    limit: int | None
    remaining: int | None
    reserved: int
    usage: Usage
    agents: dict[str, BudgetScopeSnapshot]


Listener = Callable[[BudgetSnapshot], None]
_T = TypeVar("_T")


def _usage_of(row: Sequence[int] | None) -> Usage:
    if row is None:
        return Usage()
    return Usage(
        input_tokens=row[0],
        cached_input_tokens=row[1],
        output_tokens=row[2],
        reasoning_tokens=row[3],
        estimated=bool(row[4]),
    )


def _scope_snapshot(limit: int | None, usage: Usage, reserved: int) -> BudgetScopeSnapshot:
    used = usage.total
    remaining = None if limit is None else max(0, limit - used - reserved)
    return BudgetScopeSnapshot(
        used=used, limit=limit, remaining=remaining, reserved=reserved, usage=usage
    )


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"a token limit must be a whole number >= 0 or None, got {limit!r}")


class TokenBudgeter:
    """The ledger of limits, committed usage and outstanding reservations.

    Every plain method is synchronous and short (one SQLite transaction) and safe to call from
    several threads; async code uses the `a*` methods, which run them on a worker thread. Several
    processes may share one ledger file.
    """

    def __init__(self, ledger_path: Path | None = None) -> None:
        self.path = ledger_path
        self._db = SqliteFile(ledger_path, _SCHEMA, synchronous="NORMAL")
        self._listeners: list[Listener] = []
        # Events of this process's calls waiting in `areserve`, set when the ledger changes.
        self._wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._pending: set[Future[Any]] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        with self._tx() as conn:
            self._sweep_dead(conn)

    @classmethod
    def for_workspace(cls, root: Path) -> TokenBudgeter:
        return cls(state_dir(root) / LEDGER_FILE)

    def _tx(self, *, write: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction(write=write)

    def close(self) -> None:
        """Finish the transactions still queued by async callers, then close the ledger."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._db.close()

    def __enter__(self) -> TokenBudgeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, fn: Listener) -> None:
        """Call `fn(snapshot)` after every reserve/commit/release/set/reset made in this process."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def _notify(self) -> None:
        if not self._listeners:
            return
        snap = self.snapshot()
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:
                log.exception("budget listener %r failed", fn)

    def reserve(
        self,
        *,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None = None,
        min_output_tokens: int = 64,
        ancestor_run_ids: Sequence[str] = (),
    ) -> Reservation:
        """Hold `prompt_tokens + max_tokens` in every scope that applies, or raise BudgetExceeded.

        Scopes: `run:<run_id>` (limited by `run_limit`, remembered for the run's later calls),
        `agent:<agent>`, `total`, and `run:<id>` of each ancestor run (a child run's calls count
        against its parents' run budgets). When the tightest scope cannot cover the full request
        but can cover the prompt plus at least `min_output_tokens`, `max_tokens` shrinks to fit;
        while other calls wait on a scope, the grant is at most a fair share of what it has left.
        This never waits: `areserve` waits when only calls in flight are in the way.
        """
        reservation = self._reserve_tx(
            run_id=run_id,
            agent=agent,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            run_limit=run_limit,
            min_output_tokens=min_output_tokens,
            ancestor_run_ids=ancestor_run_ids,
        )
        self._settled()
        self._notify()
        return reservation

    async def areserve(
        self,
        *,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None = None,
        min_output_tokens: int = 64,
        ancestor_run_ids: Sequence[str] = (),
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> Reservation:
        """`reserve` off the event loop, waiting (up to `wait_seconds`) while calls in flight hold
        what this call needs; refused at once when committed spend alone leaves no room.

        Cancelling the caller cancels the wait; a reservation that its worker thread granted after
        the cancel is released.
        """
        loop = asyncio.get_running_loop()
        waiter = uuid.uuid4().hex
        began = loop.time()
        deadline = began + max(0.0, wait_seconds)
        delay = _POLL_FIRST_S
        queued = False  # a refusal put this call in the ledger's wait queue
        try:
            while True:
                # Registered before the attempt, so a settle in between is never missed.
                wake = asyncio.Event()
                self._wakers.add((loop, wake))
                try:
                    try:
                        reservation = await self._in_thread(
                            self._reserve_tx,
                            run_id=run_id,
                            agent=agent,
                            prompt_tokens=prompt_tokens,
                            max_tokens=max_tokens,
                            run_limit=run_limit,
                            min_output_tokens=min_output_tokens,
                            ancestor_run_ids=ancestor_run_ids,
                            waiter_id=waiter,
                        )
                        queued = False  # the grant took it out of the queue
                        return reservation
                    except BudgetExceeded as exc:
                        queued = queued or exc.waitable
                        left = deadline - loop.time()
                        if not exc.waitable:
                            raise
                        if left <= 0:
                            if wait_seconds <= 0:
                                raise
                            raise BudgetExceeded(
                                exc.scope,
                                exc.needed,
                                exc.remaining,
                                exc.limit,
                                exc.in_flight,
                                waited=loop.time() - began,
                            ) from None
                    # Another call of this process settling wakes us at once; other processes'
                    # settles are seen by polling.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), min(delay, left))
                    delay = min(delay * 2, _POLL_MAX_S)
                finally:
                    self._wakers.discard((loop, wake))
        finally:
            if queued:
                await self._in_thread(self._leave_queue, waiter, shielded=True)

    async def acommit(self, reservation: Reservation, usage: Usage) -> None:
        """`commit` on a worker thread; a cancel of the caller does not undo or lose it."""
        await self._in_thread(self._commit_tx, reservation, usage, shielded=True)

    async def arelease(self, reservation: Reservation) -> None:
        """`release` on a worker thread; a cancel of the caller does not stop it."""
        await self._in_thread(self._release_tx, reservation, shielded=True)

    async def asnapshot(self) -> BudgetSnapshot:
        return await asyncio.to_thread(self.snapshot)

    async def arun_snapshot(self, run_id: str) -> BudgetScopeSnapshot:
        return await asyncio.to_thread(self.run_snapshot, run_id)

    async def asettled(self) -> None:
        """Wait until every ledger operation started from async code has finished."""
        while self._pending:
            jobs = [asyncio.wrap_future(f) for f in list(self._pending)]
            await asyncio.wait(jobs)
            for job in jobs:  # their outcomes belong to their callers
                _ = job.cancelled() or job.exception()
            await asyncio.sleep(0.001)  # done jobs leave `_pending` right after their result

    async def _in_thread(
        self, fn: Callable[..., _T], *args: object, shielded: bool = False, **kwargs: object
    ) -> _T:
        """Run one ledger transaction on a worker thread, then notify listeners on this loop.

        The thread cannot be stopped: when the caller is cancelled it finishes anyway, and a
        reservation it granted is then released (a commit or release simply completes).
        """
        loop = asyncio.get_running_loop()

        def work() -> _T:
            result = fn(*args, **kwargs)
            self._settled()
            if self._listeners:
                snap = self.snapshot()
                loop.call_soon_threadsafe(self._deliver, snap)
            return result

        job: Future[_T] = self._executor_submit(work)
        outcome = asyncio.wrap_future(job)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            # Nobody awaits the outcome any more: retrieve it so asyncio does not log it.
            outcome.add_done_callback(lambda f: f.cancelled() or f.exception())
            if not shielded:
                waiter = kwargs.get("waiter_id")
                job.add_done_callback(
                    lambda done: self._undo_abandoned(
                        done, waiter if isinstance(waiter, str) else None
                    )
                )
            raise

    def _executor_submit(self, work: Callable[[], _T]) -> Future[_T]:
        job: Future[_T] = Future()

        def run() -> None:
            if not job.set_running_or_notify_cancel():
                return
            # Done callbacks (which may queue a release) run before the job leaves `_pending`,
            # so `asettled` never sees a gap.
            try:
                job.set_result(work())
            except BaseException as exc:
                job.set_exception(exc)
            finally:
                self._pending.discard(job)

        self._pending.add(job)
        with self._executor_lock:
            if self._executor is None:
                # Transactions serialize on the ledger's lock anyway: two threads are plenty.
                self._executor = ThreadPoolExecutor(2, thread_name_prefix="agentls-ledger")
            self._executor.submit(run)
        return job

    def _undo_abandoned(self, job: Future[Any], waiter_id: str | None) -> None:
        """Undo what a reserve did after its caller gave up: the call will never be made."""
        if job.cancelled():
            return
        exc = job.exception()
        result = job.result() if exc is None else None

        def undo() -> None:
            changed = isinstance(result, Reservation) and self._release_tx(result)
            if waiter_id is not None and isinstance(exc, BudgetExceeded) and exc.waitable:
                self._leave_queue(waiter_id)  # it had just joined the queue
            if changed:
                self._settled()

        if isinstance(result, Reservation) or (isinstance(exc, BudgetExceeded) and exc.waitable):
            self._executor_submit(undo)

    def _deliver(self, snap: BudgetSnapshot) -> None:
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:
                log.exception("budget listener %r failed", fn)

    def _settled(self) -> None:
        """Wake this process's waiting calls: something changed in the ledger."""
        for loop, wake in list(self._wakers):
            with contextlib.suppress(RuntimeError):  # a loop that has closed
                loop.call_soon_threadsafe(wake.set)

    def _leave_queue(self, waiter_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM waiters WHERE id = ?", (waiter_id,))

    def _reserve_tx(
        self,
        *,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None = None,
        min_output_tokens: int = 64,
        ancestor_run_ids: Sequence[str] = (),
        waiter_id: str | None = None,
    ) -> Reservation:
        if prompt_tokens < 0 or max_tokens < 1:
            raise ValueError("prompt_tokens must be >= 0 and max_tokens >= 1")
        _check_limit(run_limit)
        run_scope = f"run:{run_id}"
        scopes = tuple(
            dict.fromkeys(
                [run_scope, f"agent:{agent}", TOTAL, *(f"run:{a}" for a in ancestor_run_ids)]
            )
        )
        res_id = uuid.uuid4().hex
        min_out = min(max_tokens, max(1, min_output_tokens))
        with self._tx() as conn:
            if run_limit is not None:
                conn.execute(
                    "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim",
                    (run_scope, run_limit, time.time()),
                )
            state = self._limited(conn, scopes, waiter_id)
            outcome = _grant(state, prompt_tokens, max_tokens, min_out)
            if isinstance(outcome, BudgetExceeded) and self._sweep_dead(conn):
                state = self._limited(conn, scopes, waiter_id)
                outcome = _grant(state, prompt_tokens, max_tokens, min_out)
            if isinstance(outcome, BudgetExceeded):
                # Leave the transaction normally so the sweep, the run limit and the place in
                # the queue are kept.
                if outcome.waitable and waiter_id is not None:
                    conn.executemany(
                        "INSERT OR IGNORE INTO waiters (scope, id, pid, pid_start, since) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(s, waiter_id, os.getpid(), _own_start(), time.time()) for s in scopes],
                    )
            else:
                tokens = prompt_tokens + outcome
                conn.execute(
                    "INSERT INTO reservations (id, run_id, agent, tokens, pid, pid_start, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (res_id, run_id, agent, tokens, os.getpid(), _own_start(), time.time()),
                )
                conn.executemany(
                    "INSERT INTO reserved (scope, res_id, tokens) VALUES (?, ?, ?)",
                    [(s, res_id, tokens) for s in scopes],
                )
                if waiter_id is not None:
                    conn.execute("DELETE FROM waiters WHERE id = ?", (waiter_id,))
        if isinstance(outcome, BudgetExceeded):
            raise outcome
        return Reservation(
            id=res_id,
            run_id=run_id,
            agent=agent,
            tokens=tokens,
            max_tokens=outcome,
            prompt_tokens=prompt_tokens,
            scopes=scopes,
        )

    def commit(self, reservation: Reservation, usage: Usage) -> None:
        """Replace the reservation with what the call really used, in every scope it held."""
        self._commit_tx(reservation, usage)
        self._settled()
        self._notify()

    def _commit_tx(self, reservation: Reservation, usage: Usage) -> None:
        if reservation.settled:
            raise ValueError(f"reservation {reservation.id} was already committed or released")
        if usage.total > reservation.tokens:
            # The estimate was not an upper bound. The spend happened, so it is recorded as is.
            log.warning(
                "run %s used %d tokens but reserved only %d; the prompt estimate was too low",
                reservation.run_id,
                usage.total,
                reservation.tokens,
            )
        now = time.time()
        with self._tx() as conn:
            self._drop(conn, reservation.id)
            conn.executemany(
                "INSERT INTO scopes (scope, input, cached, output, reasoning, estimated, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET "
                "input = input + excluded.input, cached = cached + excluded.cached, "
                "output = output + excluded.output, reasoning = reasoning + excluded.reasoning, "
                "estimated = max(estimated, excluded.estimated), updated = excluded.updated",
                [
                    (
                        s,
                        usage.input_tokens,
                        usage.cached_input_tokens,
                        usage.output_tokens,
                        usage.reasoning_tokens,
                        int(usage.estimated),
                        now,
                    )
                    for s in reservation.scopes
                ],
            )
        reservation.settled = True

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call was not made or failed before reporting usage.

        Releasing a settled reservation does nothing: `finally: release(r)` after a commit is safe.
        """
        if self._release_tx(reservation):
            self._settled()
            self._notify()

    def _release_tx(self, reservation: Reservation) -> bool:
        if reservation.settled:
            return False
        with self._tx() as conn:
            self._drop(conn, reservation.id)
        reservation.settled = True
        return True

    def set_limit(self, limit: int | None, agent: str | None = None) -> None:
        """Set the workspace total's limit (agent=None) or one agent's; None means unlimited."""
        self._set_limit_tx(limit, agent)
        self._settled()
        self._notify()

    async def aset_limit(self, limit: int | None, agent: str | None = None) -> None:
        """`set_limit` on a worker thread."""
        await self._in_thread(self._set_limit_tx, limit, agent, shielded=True)

    def _set_limit_tx(self, limit: int | None, agent: str | None) -> None:
        _check_limit(limit)
        scope = TOTAL if agent is None else f"agent:{agent}"
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim, updated = excluded.updated",
                (scope, limit, time.time()),
            )

    def set_run_limit(self, run_id: str, limit: int | None) -> None:
        """Set a run's limit ahead of its first call (e.g. a parent run that only delegates)."""
        _check_limit(limit)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim",
                (f"run:{run_id}", limit, time.time()),
            )
        self._notify()

    def reset(self, agent: str | None = None) -> None:
        """Zero committed usage: the total and every agent (agent=None), or one agent.

        Limits stay; reservations of calls in flight stay and are committed as usual.
        """
        self._reset_tx(agent)
        self._settled()
        self._notify()

    async def areset(self, agent: str | None = None) -> None:
        """`reset` on a worker thread."""
        await self._in_thread(self._reset_tx, agent, shielded=True)

    def _reset_tx(self, agent: str | None) -> None:
        where, params = ("scope = ? OR scope LIKE 'agent:%'", (TOTAL,))
        if agent is not None:
            where, params = "scope = ?", (f"agent:{agent}",)
        with self._tx() as conn:
            conn.execute(
                "UPDATE scopes SET input = 0, cached = 0, output = 0, reasoning = 0, "
                f"estimated = 0, updated = ? WHERE {where}",
                (time.time(), *params),
            )

    def snapshot(self) -> BudgetSnapshot:
        """Used, limit, remaining and reserved tokens for the total and every known agent."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT scope, lim, input, cached, output, reasoning, estimated FROM scopes "
                "WHERE scope = ? OR scope LIKE 'agent:%'",
                (TOTAL,),
            ).fetchall()
            reserved = dict(
                conn.execute(
                    "SELECT scope, SUM(tokens) FROM reserved "
                    "WHERE scope = ? OR scope LIKE 'agent:%' GROUP BY scope",
                    (TOTAL,),
                ).fetchall()
            )
        by_scope = {r[0]: r for r in rows}
        agents = {
            scope.removeprefix("agent:"): _scope_snapshot(
                by_scope[scope][1] if scope in by_scope else None,
                _usage_of(by_scope[scope][2:] if scope in by_scope else None),
                int(reserved.get(scope, 0)),
            )
            for scope in sorted(set(by_scope) | set(reserved))
            if scope != TOTAL
        }
        total_row = by_scope.get(TOTAL)
        total = _scope_snapshot(
            total_row[1] if total_row else None,
            _usage_of(total_row[2:] if total_row else None),
            int(reserved.get(TOTAL, 0)),
        )
        return BudgetSnapshot(**total.model_dump(), agents=agents)

    def run_usage(self, run_id: str) -> Usage:
        """Committed usage of one run (its own calls and those of child runs that named it)."""
        return self.run_snapshot(run_id).usage

    def run_snapshot(self, run_id: str) -> BudgetScopeSnapshot:
        scope = f"run:{run_id}"
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT lim, input, cached, output, reasoning, estimated FROM scopes "
                "WHERE scope = ?",
                (scope,),
            ).fetchone()
            (reserved,) = conn.execute(
                "SELECT COALESCE(SUM(tokens), 0) FROM reserved WHERE scope = ?", (scope,)
            ).fetchone()
        return _scope_snapshot(
            row[0] if row else None, _usage_of(row[1:] if row else None), reserved
        )

    @staticmethod
    def _limited(
        conn: sqlite3.Connection, scopes: Sequence[str], waiter_id: str | None
    ) -> list[_ScopeState]:
        """The limited scopes among `scopes`, with their committed, reserved and waiting calls."""
        marks = ",".join("?" * len(scopes))
        limits = conn.execute(
            f"SELECT scope, lim, input + output FROM scopes WHERE scope IN ({marks}) "
            "AND lim IS NOT NULL",
            scopes,
        ).fetchall()
        if not limits:
            return []
        reserved = dict(
            conn.execute(
                f"SELECT scope, SUM(tokens) FROM reserved WHERE scope IN ({marks}) GROUP BY scope",
                scopes,
            ).fetchall()
        )
        waiting = dict(
            conn.execute(
                f"SELECT scope, COUNT(*) FROM waiters WHERE scope IN ({marks}) AND id IS NOT ? "
                "GROUP BY scope",
                (*scopes, waiter_id),
            ).fetchall()
        )
        return [
            _ScopeState(scope, lim, used, int(reserved.get(scope, 0)), int(waiting.get(scope, 0)))
            for scope, lim, used in limits
        ]

    @staticmethod
    def _drop(conn: sqlite3.Connection, res_id: str) -> None:
        conn.execute("DELETE FROM reserved WHERE res_id = ?", (res_id,))
        conn.execute("DELETE FROM reservations WHERE id = ?", (res_id,))

    @staticmethod
    def _sweep_dead(conn: sqlite3.Connection) -> int:
        """Drop reservations of processes that no longer run; return how many were dropped."""
        owners = conn.execute(
            "SELECT pid, pid_start FROM reservations WHERE pid != ? OR pid_start IS NOT ? "
            "UNION SELECT pid, pid_start FROM waiters WHERE pid != ? OR pid_start IS NOT ?",
            (os.getpid(), _own_start(), os.getpid(), _own_start()),
        ).fetchall()
        dropped = 0
        for pid, start in owners:
            if process_alive(pid, start_ticks=start):
                continue
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM reservations WHERE pid = ? AND pid_start IS ?", (pid, start)
                )
            ]
            conn.executemany("DELETE FROM reserved WHERE res_id = ?", [(i,) for i in ids])
            conn.executemany("DELETE FROM reservations WHERE id = ?", [(i,) for i in ids])
            conn.execute("DELETE FROM waiters WHERE pid = ? AND pid_start IS ?", (pid, start))
            dropped += len(ids)
            log.info("dropped %d reservation(s) of dead process %d", len(ids), pid)
        return dropped


@dataclass(frozen=True)
class _ScopeState:
    scope: str
    limit: int
    committed: int
    reserved: int
    waiting: int  # other calls waiting on this scope

    @property
    def free(self) -> int:
        return self.limit - self.committed - self.reserved


def _grant(
    states: Sequence[_ScopeState], prompt_tokens: int, max_tokens: int, min_out: int
) -> int | BudgetExceeded:
    """The max_tokens the budget allows (maybe shrunk), or why not (`waitable` when only
    reservations in flight are in the way).

    While other calls wait on a scope, a call gets at most an even share of what is left there,
    but never less than its minimum (prompt + `min_out`) when that fits.
    """
    needed = prompt_tokens + min_out
    for st in sorted(states, key=lambda st: st.limit - st.committed):
        if st.limit - st.committed < needed:
            return BudgetExceeded(st.scope, needed, st.free, st.limit, st.reserved)
    allowed = max_tokens
    for st in states:
        share = st.free // (st.waiting + 1)
        allowed = min(allowed, share - prompt_tokens)
    if allowed >= min_out:
        return allowed
    short = [st for st in states if st.free < needed]
    if not short:
        return min_out
    tightest = min(short, key=lambda st: st.free)
    return BudgetExceeded(
        tightest.scope, needed, tightest.free, tightest.limit, tightest.reserved, waitable=True
    )


_own_start_cache: dict[int, str | None] = {}


def _own_start() -> str | None:
    pid = os.getpid()
    if pid not in _own_start_cache:
        _own_start_cache[pid] = process_start_ticks(pid)
    return _own_start_cache[pid]
