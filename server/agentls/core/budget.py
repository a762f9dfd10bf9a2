"""TokenBudgeter: hard token limits per run, per agent and for the whole workspace.

Before every model call the runtime reserves `prompt + max_tokens` against each scope that applies
(`run:<id>`, `agent:<name>`, `total`, and any ancestor runs of a child run) in one SQLite
transaction taken with BEGIN IMMEDIATE, so the check and the reservation are atomic across threads
and processes. After the call the reservation is replaced by the provider-reported usage. Because
a reservation only succeeds when `limit - committed - reserved` covers it, and usage is at most what
was reserved (the prompt estimate is an upper bound, see DESIGN.md), committed usage never exceeds
a limit however many runs and processes share the ledger.

A call is refused only when committed spend leaves no room for its minimum (prompt plus the
smallest useful answer, `min_output_tokens`, 32 by default). When other calls' reservations are
what is in the way, `areserve` waits for them to settle (cancellable, bounded by `wait_seconds`),
polling the ledger with backoff so that runs in other processes are seen too; while runs wait,
what is left is shared by as many of them as it can serve at their minimum, so waiting runs share
the budget instead of refusing each other, and the last tokens still serve one short call.

Async code uses the `a*` methods: their transactions run on one worker thread, several to a
transaction when calls queue up (ledger_worker.py), so a busy ledger never stalls the event loop;
a reservation granted after its caller was cancelled is released.

The ledger lives at `<workspace>/.agentls/ledger.db` (WAL), so totals survive restarts.
Reservations carry the owning process's pid and start time; those of a process that died (kill -9)
are dropped when a ledger is opened and whenever they would block a reservation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentls.core.bounds import call_usage_problem
from agentls.core.budget_grants import (
    DEFAULT_MIN_OUTPUT_TOKENS,
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    TOTAL,
    BudgetExceeded,
    GrantRequest,
    ScopeState,
    check_limit,
    grant,
)
from agentls.core.events import Usage
from agentls.core.ledger_worker import LedgerOp, LedgerWorker
from agentls.core.sqlite import SqliteFile, process_alive, process_start_ticks, state_dir
from agentls.core.state_check import StateError

# Re-exported: callers import the budget's names from here.
__all__ = [
    "DEFAULT_MIN_OUTPUT_TOKENS",
    "DEFAULT_WAIT_SECONDS",
    "MAX_WAIT_SECONDS",
    "TOTAL",
    "BudgetExceeded",
    "BudgetScopeSnapshot",
    "BudgetSnapshot",
    "Reservation",
    "TokenBudgeter",
]

log = logging.getLogger(__name__)

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

_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.25


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


class TokenBudgeter:
    """The ledger of limits, committed usage and outstanding reservations.

    Every plain method is synchronous and short (one SQLite transaction) and safe to call from
    several threads. Async code uses the `a*` methods: their transactions run on the ledger's
    worker thread (ledger_worker.py), batched with those of other calls queued meanwhile. Several
    processes may share one ledger file.
    """

    def __init__(self, ledger_path: Path | None = None) -> None:
        self.path = ledger_path
        self._db = SqliteFile(ledger_path, _SCHEMA, synchronous="NORMAL")
        self._listeners: list[Listener] = []
        # Events of this process's calls waiting in `areserve`, set when room may have been made.
        self._wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        # Operations queued by async callers and not yet delivered back to their loop.
        self._outstanding: set[LedgerOp] = set()
        self._worker = LedgerWorker(
            self._tx,
            finish=self._finish_batch,
            delivered=self._delivered,
            batch_done=self._batch_done,
            name="agentls-ledger",
        )
        with self._tx() as conn:
            self._sweep_dead(conn)

    @classmethod
    def for_workspace(cls, root: Path) -> TokenBudgeter:
        return cls(state_dir(root) / LEDGER_FILE)

    def _tx(self, *, write: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction(write=write)

    @property
    def batches(self) -> int:
        """Transactions the worker thread has committed for async callers (diagnostics)."""
        return self._worker.batches

    def close(self) -> None:
        """Finish the transactions still queued by async callers, then close the ledger."""
        self._worker.stop()
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
        self._deliver(self.snapshot())

    def reserve(
        self,
        *,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None = None,
        min_output_tokens: int = DEFAULT_MIN_OUTPUT_TOKENS,
        ancestor_run_ids: Sequence[str] = (),
    ) -> Reservation:
        """Hold `prompt_tokens + max_tokens` in every scope that applies, or raise BudgetExceeded.

        Scopes: `run:<run_id>` (limited by `run_limit`, remembered for the run's later calls),
        `agent:<agent>`, `total`, and `run:<id>` of each ancestor run (a child run's calls count
        against its parents' run budgets). When the tightest scope cannot cover the full request
        but can cover the prompt plus at least `min_output_tokens`, `max_tokens` shrinks to fit;
        while other calls wait on a scope, the grant is at most a fair share of what it has left
        (see `_grant`). This never waits: `areserve` waits when only calls in flight are in the way.
        """
        request = GrantRequest.of(
            run_id, agent, prompt_tokens, max_tokens, run_limit, min_output_tokens, ancestor_run_ids
        )
        with self._tx() as conn:
            outcome = self._reserve_in(conn, request, None, queued=False)
        if isinstance(outcome, BudgetExceeded):
            raise outcome
        self._notify()
        return outcome

    async def areserve(
        self,
        *,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None = None,
        min_output_tokens: int = DEFAULT_MIN_OUTPUT_TOKENS,
        ancestor_run_ids: Sequence[str] = (),
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> Reservation:
        """`reserve` off the event loop, waiting (up to `wait_seconds`) while calls in flight hold
        what this call needs; refused at once when committed spend alone leaves no room.

        Cancelling the caller cancels the wait; a reservation that the worker thread granted after
        the cancel is released.
        """
        request = GrantRequest.of(
            run_id, agent, prompt_tokens, max_tokens, run_limit, min_output_tokens, ancestor_run_ids
        )
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
                    outcome = await self._submit(
                        functools.partial(
                            self._reserve_in, request=request, waiter_id=waiter, queued=queued
                        ),
                        abandoned=functools.partial(self._abandon_reserve, waiter),
                    )
                    if isinstance(outcome, Reservation):
                        queued = False  # the grant took it out of the queue
                        return outcome
                    queued = queued or outcome.waitable
                    left = deadline - loop.time()
                    if not outcome.waitable:
                        raise outcome
                    if left <= 0:
                        if wait_seconds <= 0:
                            raise outcome
                        raise BudgetExceeded(
                            outcome.scope,
                            outcome.needed,
                            outcome.remaining,
                            outcome.limit,
                            outcome.in_flight,
                            waited=loop.time() - began,
                        )
                    # Another call of this process making room wakes us at once; other
                    # processes' settles are seen by polling.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), min(delay, left))
                    delay = min(delay * 2, _POLL_MAX_S)
                finally:
                    self._wakers.discard((loop, wake))
        finally:
            if queued:
                await self._submit(functools.partial(self._leave_queue_in, waiter), frees=True)

    async def acommit(self, reservation: Reservation, usage: Usage) -> None:
        """`commit` on the worker thread; a cancel of the caller does not undo or lose it."""
        self._check_unsettled(reservation)
        _check_usage(reservation, usage)
        await self._submit(
            functools.partial(self._commit_in, reservation=reservation, usage=usage),
            after=functools.partial(_mark_settled, reservation),
            frees=True,
        )

    async def arelease(self, reservation: Reservation) -> None:
        """`release` on the worker thread; a cancel of the caller does not stop it."""
        if reservation.settled:
            return
        await self._submit(
            functools.partial(self._drop, res_id=reservation.id),
            after=functools.partial(_mark_settled, reservation),
            frees=True,
        )

    async def asnapshot(self) -> BudgetSnapshot:
        return await asyncio.to_thread(self.snapshot)

    async def arun_snapshot(self, run_id: str) -> BudgetScopeSnapshot:
        return await asyncio.to_thread(self.run_snapshot, run_id)

    async def asettled(self) -> None:
        """Wait until every ledger operation started from async code has finished (including
        the undoing of reservations granted to callers that had gone)."""
        while self._outstanding:
            await asyncio.sleep(0.001)

    async def _submit(
        self,
        run: Callable[[sqlite3.Connection], _T],
        *,
        after: Callable[[Any], None] | None = None,
        abandoned: Callable[[Any, BaseException | None], None] | None = None,
        frees: bool = False,
    ) -> _T:
        """Queue one operation for the worker thread and wait for its result.

        The operation runs whatever happens to the caller; a caller cancelled before the result
        came back leaves the result to `abandoned`.
        """
        loop = asyncio.get_running_loop()
        op = LedgerOp(run, loop, loop.create_future(), after, abandoned, frees)
        self._outstanding.add(op)
        self._worker.submit(op)
        result: _T = await op.future
        return result

    def _finish_batch(self, conn: sqlite3.Connection) -> BudgetSnapshot | None:
        """The snapshot listeners see after a batch, read in the batch's own transaction."""
        return self._snapshot_in(conn) if self._listeners else None

    def _batch_done(self, batch: list[LedgerOp]) -> None:
        if any(op.frees for op in batch):
            self._settled()

    def _delivered(self, ops: list[LedgerOp], snap: BudgetSnapshot | None) -> None:
        """On the callers' loop: hand each operation's outcome to its caller, or, when the caller
        has gone, to its `abandoned` handler (which may queue an undo first)."""
        for op in ops:
            if op.future.cancelled():
                if op.abandoned is not None:
                    op.abandoned(op.result, op.error)
            elif op.error is not None:
                op.future.set_exception(op.error)
            else:
                op.future.set_result(op.result)
            self._outstanding.discard(op)
        if snap is not None:
            self._deliver(snap)

    def _abandon_reserve(
        self, waiter_id: str, outcome: Reservation | BudgetExceeded | None, _: object
    ) -> None:
        """Undo what a reserve did after its caller gave up: the call will never be made."""
        if isinstance(outcome, Reservation):
            self._fire(functools.partial(self._drop, res_id=outcome.id), frees=True)
        elif isinstance(outcome, BudgetExceeded) and outcome.waitable:
            self._fire(functools.partial(self._leave_queue_in, waiter_id), frees=True)

    def _fire(self, run: Callable[[sqlite3.Connection], object], *, frees: bool) -> None:
        """Queue an operation nobody waits for (on the running loop, so `asettled` sees it)."""
        loop = asyncio.get_running_loop()
        op = LedgerOp(run, loop, loop.create_future(), frees=frees)
        op.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._outstanding.add(op)
        self._worker.submit(op)

    def _deliver(self, snap: BudgetSnapshot) -> None:
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:
                log.exception("budget listener %r failed", fn)

    def _settled(self) -> None:
        """Wake this process's waiting calls: room may have been made in the ledger."""
        for loop, wake in list(self._wakers):
            with contextlib.suppress(RuntimeError):  # a loop that has closed
                loop.call_soon_threadsafe(wake.set)

    @staticmethod
    def _leave_queue_in(waiter_id: str, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM waiters WHERE id = ?", (waiter_id,))

    def _reserve_in(
        self,
        conn: sqlite3.Connection,
        request: GrantRequest,
        waiter_id: str | None,
        queued: bool,
    ) -> Reservation | BudgetExceeded:
        """The check and the reservation, inside the caller's transaction.

        A refusal is returned, not raised, so that the writes it made (the run limit, the sweep
        of dead processes, the place in the queue) commit with the rest of the batch.
        """
        states = self._limited(conn, request, waiter_id if queued else None)
        outcome = grant(states, request.prompt_tokens, request.max_tokens, request.min_out)
        if isinstance(outcome, BudgetExceeded) and self._sweep_dead(conn):
            states = self._limited(conn, request, waiter_id if queued else None)
            outcome = grant(states, request.prompt_tokens, request.max_tokens, request.min_out)
        if isinstance(outcome, BudgetExceeded):
            if outcome.waitable and waiter_id is not None and not queued:
                conn.executemany(
                    "INSERT OR IGNORE INTO waiters (scope, id, pid, pid_start, since) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (s, waiter_id, os.getpid(), _own_start(), time.time())
                        for s in request.scopes
                    ],
                )
            return outcome
        res_id = uuid.uuid4().hex
        tokens = request.prompt_tokens + outcome
        conn.execute(
            "INSERT INTO reservations (id, run_id, agent, tokens, pid, pid_start, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (res_id, request.run_id, request.agent, tokens, os.getpid(), _own_start(), time.time()),
        )
        conn.executemany(
            "INSERT INTO reserved (scope, res_id, tokens) VALUES (?, ?, ?)",
            [(s, res_id, tokens) for s in request.scopes],
        )
        if queued:
            conn.execute("DELETE FROM waiters WHERE id = ?", (waiter_id,))
        return Reservation(
            id=res_id,
            run_id=request.run_id,
            agent=request.agent,
            tokens=tokens,
            max_tokens=outcome,
            prompt_tokens=request.prompt_tokens,
            scopes=request.scopes,
        )

    def commit(self, reservation: Reservation, usage: Usage) -> None:
        """Replace the reservation with what the call really used, in every scope it held."""
        self._check_unsettled(reservation)
        _check_usage(reservation, usage)
        with self._tx() as conn:
            self._commit_in(conn, reservation, usage)
        reservation.settled = True
        self._settled()
        self._notify()

    @staticmethod
    def _check_unsettled(reservation: Reservation) -> None:
        if reservation.settled:
            raise ValueError(f"reservation {reservation.id} was already committed or released")

    def _commit_in(self, conn: sqlite3.Connection, reservation: Reservation, usage: Usage) -> None:
        self._drop(conn, reservation.id)
        now = time.time()
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

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call was not made or failed before reporting usage.

        Releasing a settled reservation does nothing: `finally: release(r)` after a commit is safe.
        """
        if reservation.settled:
            return
        with self._tx() as conn:
            self._drop(conn, reservation.id)
        reservation.settled = True
        self._settled()
        self._notify()

    def set_limit(self, limit: int | None, agent: str | None = None) -> None:
        """Set the workspace total's limit (agent=None) or one agent's; None means unlimited."""
        check_limit(limit)
        with self._tx() as conn:
            self._set_limit_in(conn, limit, agent)
        self._settled()
        self._notify()

    async def aset_limit(self, limit: int | None, agent: str | None = None) -> None:
        """`set_limit` on the worker thread."""
        check_limit(limit)
        await self._submit(
            functools.partial(self._set_limit_in, limit=limit, agent=agent), frees=True
        )

    def set_limits(
        self,
        limits: Sequence[tuple[int | None, str | None]],
        lower: Sequence[tuple[int, str | None]] = (),
    ) -> None:
        """`aset_limits` from synchronous code, in one transaction."""
        if not limits and not lower:
            return
        run = self._limits_op(limits, lower)
        with self._tx() as conn:
            run(conn)
        self._settled()
        self._notify()

    async def aset_limits(
        self,
        limits: Sequence[tuple[int | None, str | None]],
        lower: Sequence[tuple[int, str | None]] = (),
    ) -> None:
        """Several `set_limit`s (limit, agent) in one transaction on the worker thread, then the
        `lower` ones, each written only where it is below the limit in force (never raising it).

        Calls queue in order, so of two changes made one after the other the later one wins.
        """
        await self._submit(self._limits_op(limits, lower), frees=True)

    def _limits_op(
        self,
        limits: Sequence[tuple[int | None, str | None]],
        lower: Sequence[tuple[int, str | None]],
    ) -> Callable[[sqlite3.Connection], None]:
        for limit, _ in [*limits, *lower]:
            check_limit(limit)

        def run(conn: sqlite3.Connection) -> None:
            for limit, agent in limits:
                self._set_limit_in(conn, limit, agent)
            for cap, agent in lower:
                self._set_limit_in(conn, cap, agent, lower_only=True)

        return run

    @staticmethod
    def _set_limit_in(
        conn: sqlite3.Connection, limit: int | None, agent: str | None, *, lower_only: bool = False
    ) -> None:
        scope = TOTAL if agent is None else f"agent:{agent}"
        # One statement, so another process's `budget set` cannot slip between a read and a write.
        only_lower = " WHERE scopes.lim IS NULL OR scopes.lim > excluded.lim" if lower_only else ""
        conn.execute(
            "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim, updated = excluded.updated"
            + only_lower,
            (scope, limit, time.time()),
        )
        if agent is not None and limit is None:
            # An agent without a limit and without spend is nothing to show: a limit set for a
            # typo and then removed leaves no trace in the listing.
            conn.execute(
                "DELETE FROM scopes WHERE scope = ? AND lim IS NULL AND input = 0 AND cached = 0 "
                "AND output = 0 AND reasoning = 0",
                (scope,),
            )

    def set_run_limit(self, run_id: str, limit: int | None) -> None:
        """Set a run's limit ahead of its first call (e.g. a parent run that only delegates)."""
        check_limit(limit)
        with self._tx() as conn:
            _set_run_limit_in(conn, f"run:{run_id}", limit)
        self._notify()

    def reset(self, agent: str | None = None) -> None:
        """Zero committed usage: the total and every agent (agent=None), or one agent.

        Limits stay; reservations of calls in flight stay and are committed as usual.
        """
        with self._tx() as conn:
            self._reset_in(conn, agent)
        self._settled()
        self._notify()

    async def areset(self, agent: str | None = None) -> None:
        """`reset` on the worker thread."""
        await self._submit(functools.partial(self._reset_in, agent=agent), frees=True)

    @staticmethod
    def _reset_in(conn: sqlite3.Connection, agent: str | None) -> None:
        where, params = ("scope = ? OR scope LIKE 'agent:%'", (TOTAL,))
        if agent is not None:
            where, params = "scope = ?", (f"agent:{agent}",)
        conn.execute(
            "UPDATE scopes SET input = 0, cached = 0, output = 0, reasoning = 0, "
            f"estimated = 0, updated = ? WHERE {where}",
            (time.time(), *params),
        )

    def snapshot(self) -> BudgetSnapshot:
        """Used, limit, remaining and reserved tokens for the total and every known agent."""
        with self._tx(write=False) as conn:
            try:
                return self._snapshot_in(conn)
            except ValidationError:  # a number agentls did not write: named, not a traceback
                raise self._unusable(conn) from None

    def _unusable(self, conn: sqlite3.Connection) -> StateError:
        from agentls.core.ledger_values import REPAIR_HINT, bad_values, summary

        bad = bad_values(conn)
        problem = summary(bad) if bad else "holds a number the budget cannot use"
        return StateError(self.path or Path(LEDGER_FILE), problem, REPAIR_HINT)

    @staticmethod
    def _snapshot_in(conn: sqlite3.Connection) -> BudgetSnapshot:
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
        conn: sqlite3.Connection, request: GrantRequest, waiter_id: str | None
    ) -> list[ScopeState]:
        """The limited scopes of a call, with their committed, reserved and waiting calls, in
        one query; the run's limit is written first when it is new or changed."""
        rows = conn.execute(
            _state_sql(len(request.scopes)), (waiter_id, *request.scopes)
        ).fetchall()
        if request.run_limit is not None and not any(
            scope == request.run_scope and lim == request.run_limit for scope, lim, *_ in rows
        ):
            _set_run_limit_in(conn, request.run_scope, request.run_limit)
            rows = conn.execute(
                _state_sql(len(request.scopes)), (waiter_id, *request.scopes)
            ).fetchall()
        return [
            ScopeState(scope, lim, used, reserved, waiting)
            for scope, lim, used, reserved, waiting in rows
            if lim is not None
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


def _set_run_limit_in(conn: sqlite3.Connection, scope: str, limit: int | None) -> None:
    conn.execute(
        "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
        "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim",
        (scope, limit, time.time()),
    )


def _mark_settled(reservation: Reservation, _: object) -> None:
    reservation.settled = True


def _check_usage(reservation: Reservation, usage: Usage) -> None:
    """Refuse a count the ledger must not hold; warn about one above the reservation."""
    if (problem := call_usage_problem(usage)) is not None:
        # metering.recordable records the reservation in place of such a report: this is a bug.
        raise ValueError(f"refused to commit run {reservation.run_id}'s usage: {problem}")
    if usage.total > reservation.tokens:
        # The estimate was not an upper bound. The spend happened, so it is recorded as is.
        log.warning(
            "run %s used %d tokens but reserved only %d; the prompt estimate was too low",
            reservation.run_id,
            usage.total,
            reservation.tokens,
        )


@functools.lru_cache(maxsize=32)
def _state_sql(scopes: int) -> str:
    marks = ",".join("?" * scopes)
    return (
        "SELECT s.scope, s.lim, s.input + s.output, "
        "CASE WHEN s.lim IS NULL THEN 0 ELSE "
        "(SELECT COALESCE(SUM(r.tokens), 0) FROM reserved r WHERE r.scope = s.scope) END, "
        "CASE WHEN s.lim IS NULL THEN 0 ELSE "
        "(SELECT COUNT(*) FROM waiters w WHERE w.scope = s.scope AND w.id IS NOT ?1) END "
        f"FROM scopes s WHERE s.scope IN ({marks})"
    )


_own_start_cache: dict[int, str | None] = {}


def _own_start() -> str | None:
    pid = os.getpid()
    if pid not in _own_start_cache:
        _own_start_cache[pid] = process_start_ticks(pid)
    return _own_start_cache[pid]
