"""TokenBudgeter: hard token limits per run, per agent and for the whole workspace.

Before every model call the runtime reserves `prompt + max_tokens` against each scope that applies
(`run:<id>`, `agent:<name>`, `total`, and any ancestor runs of a child run) in one SQLite
transaction taken with BEGIN IMMEDIATE, so the check and the reservation are atomic across threads
and processes. After the call the reservation is replaced by the provider-reported usage. Because
a reservation only succeeds when `limit - committed - reserved` covers it, and usage is at most what
was reserved (the prompt estimate is an upper bound, see DESIGN.md), committed usage never exceeds
a limit however many runs and processes share the ledger.

The ledger lives at `<workspace>/.agentls/ledger.db` (WAL), so totals survive restarts.
Reservations carry the owning process's pid and start time; those of a process that died (kill -9)
are dropped when a ledger is opened and whenever they would block a reservation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
"""


class BudgetExceeded(Exception):
    """A model call was refused because a scope's remaining budget cannot cover it.

    `needed` is the least the call needed (prompt plus the smallest useful answer), `remaining`
    what the tightest scope had left, `limit` that scope's limit, `in_flight` the tokens other
    calls held in it at the time.
    """

    def __init__(
        self, scope: str, needed: int, remaining: int, limit: int, in_flight: int = 0
    ) -> None:
        self.scope = scope
        self.needed = needed
        self.remaining = max(0, remaining)
        self.limit = limit
        self.in_flight = in_flight
        super().__init__(self._message())

    def __reduce__(self) -> tuple[type[BudgetExceeded], tuple[str, int, int, int, int]]:
        return (
            BudgetExceeded,
            (self.scope, self.needed, self.remaining, self.limit, self.in_flight),
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
        if self.scope == TOTAL:
            return (
                f"Workspace token budget exhausted: {need} but {left} the {self.limit:,}-token "
                "total remain; raise it with `agentls budget set N` or start over with "
                "`agentls budget reset`."
            )
        if (agent := self.agent) is not None:
            return (
                f"Token budget of agent '{agent}' exhausted: {need} but {left} its "
                f"{self.limit:,}-token limit remain; raise it with "
                f"`agentls budget set N --agent {agent}` or start over with "
                f"`agentls budget reset --agent {agent}`."
            )
        return (
            f"Token budget of run {self.run_id} exhausted: {need} but {left} the run's "
            f"{self.limit:,}-token budget remain; raise the agent's `budget:` in its definition "
            "or pass a larger budget for the run."
        )


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

    Every method is synchronous and short (one SQLite transaction); it is safe to call from several
    threads and from async code directly, and several processes may share one ledger file.
    """

    def __init__(self, ledger_path: Path | None = None) -> None:
        self.path = ledger_path
        self._db = SqliteFile(ledger_path, _SCHEMA, synchronous="NORMAL")
        self._listeners: list[Listener] = []
        with self._tx() as conn:
            self._sweep_dead(conn)

    @classmethod
    def for_workspace(cls, root: Path) -> TokenBudgeter:
        return cls(state_dir(root) / LEDGER_FILE)

    def _tx(self, *, write: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction(write=write)

    def close(self) -> None:
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
        but can cover the prompt plus at least `min_output_tokens`, `max_tokens` shrinks to fit.
        """
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
        with self._tx() as conn:
            if run_limit is not None:
                conn.execute(
                    "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim",
                    (run_scope, run_limit, time.time()),
                )
            tightest = self._tightest(conn, scopes)
            granted = _grant(tightest, prompt_tokens, max_tokens, min_output_tokens)
            if granted is None and self._sweep_dead(conn):
                tightest = self._tightest(conn, scopes)
                granted = _grant(tightest, prompt_tokens, max_tokens, min_output_tokens)
            if granted is None:
                # Leave the transaction normally so the sweep and the run limit are kept.
                assert tightest is not None
                scope, remaining, limit, held = tightest
                needed = prompt_tokens + min(max_tokens, min_output_tokens)
                refused = BudgetExceeded(scope, needed, remaining, limit, held)
            else:
                refused = None
                tokens = prompt_tokens + granted
                conn.execute(
                    "INSERT INTO reservations (id, run_id, agent, tokens, pid, pid_start, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (res_id, run_id, agent, tokens, os.getpid(), _own_start(), time.time()),
                )
                conn.executemany(
                    "INSERT INTO reserved (scope, res_id, tokens) VALUES (?, ?, ?)",
                    [(s, res_id, tokens) for s in scopes],
                )
        if refused is not None:
            raise refused
        assert granted is not None
        self._notify()
        return Reservation(
            id=res_id,
            run_id=run_id,
            agent=agent,
            tokens=tokens,
            max_tokens=granted,
            prompt_tokens=prompt_tokens,
            scopes=scopes,
        )

    def commit(self, reservation: Reservation, usage: Usage) -> None:
        """Replace the reservation with what the call really used, in every scope it held."""
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
        self._notify()

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call was not made or failed before reporting usage.

        Releasing a settled reservation does nothing: `finally: release(r)` after a commit is safe.
        """
        if reservation.settled:
            return
        with self._tx() as conn:
            self._drop(conn, reservation.id)
        reservation.settled = True
        self._notify()

    def set_limit(self, limit: int | None, agent: str | None = None) -> None:
        """Set the workspace total's limit (agent=None) or one agent's; None means unlimited."""
        _check_limit(limit)
        scope = TOTAL if agent is None else f"agent:{agent}"
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim, updated = excluded.updated",
                (scope, limit, time.time()),
            )
        self._notify()

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
        where, params = ("scope = ? OR scope LIKE 'agent:%'", (TOTAL,))
        if agent is not None:
            where, params = "scope = ?", (f"agent:{agent}",)
        with self._tx() as conn:
            conn.execute(
                "UPDATE scopes SET input = 0, cached = 0, output = 0, reasoning = 0, "
                f"estimated = 0, updated = ? WHERE {where}",
                (time.time(), *params),
            )
        self._notify()

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
    def _tightest(
        conn: sqlite3.Connection, scopes: Sequence[str]
    ) -> tuple[str, int, int, int] | None:
        """(scope, remaining, limit, reserved) of the limited scope with the least left, or None."""
        marks = ",".join("?" * len(scopes))
        limits = conn.execute(
            f"SELECT scope, lim, input + output FROM scopes WHERE scope IN ({marks}) "
            "AND lim IS NOT NULL",
            scopes,
        ).fetchall()
        if not limits:
            return None
        reserved = dict(
            conn.execute(
                f"SELECT scope, SUM(tokens) FROM reserved WHERE scope IN ({marks}) GROUP BY scope",
                scopes,
            ).fetchall()
        )
        candidates = [
            (scope, lim - used - held, lim, held)
            for scope, lim, used in limits
            for held in [int(reserved.get(scope, 0))]
        ]
        return min(candidates, key=lambda c: c[1])

    @staticmethod
    def _drop(conn: sqlite3.Connection, res_id: str) -> None:
        conn.execute("DELETE FROM reserved WHERE res_id = ?", (res_id,))
        conn.execute("DELETE FROM reservations WHERE id = ?", (res_id,))

    @staticmethod
    def _sweep_dead(conn: sqlite3.Connection) -> int:
        """Drop reservations of processes that no longer run; return how many were dropped."""
        owners = conn.execute(
            "SELECT DISTINCT pid, pid_start FROM reservations WHERE pid != ? OR pid_start IS NOT ?",
            (os.getpid(), _own_start()),
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
            dropped += len(ids)
            log.info("dropped %d reservation(s) of dead process %d", len(ids), pid)
        return dropped


def _grant(
    tightest: tuple[str, int, int, int] | None, prompt_tokens: int, max_tokens: int, min_output: int
) -> int | None:
    """The max_tokens the budget allows (maybe shrunk), or None if no useful answer fits."""
    if tightest is None:
        return max_tokens
    remaining = tightest[1]
    if remaining >= prompt_tokens + max_tokens:
        return max_tokens
    allowed = remaining - prompt_tokens
    if allowed >= max(1, min_output):
        return allowed
    return None


_own_start_cache: dict[int, str | None] = {}


def _own_start() -> str | None:
    pid = os.getpid()
    if pid not in _own_start_cache:
        _own_start_cache[pid] = process_start_ticks(pid)
    return _own_start_cache[pid]
