"""The ledger in an SQLite file: `<workspace>/.agentls/ledger.db` (WAL), or in memory.

Every write transaction is BEGIN IMMEDIATE: it holds the file's write lock from its first
statement, so a call's check (`states`) and its reservation (`hold`) are atomic across threads and
processes. Reservations carry the owning process's pid and start time; those of a process that
died (kill -9) are dropped by `sweep`, which the policy runs when a ledger is opened and whenever
a call would be refused.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agentls.core.budget_limits import TOTAL
from agentls.core.events import Usage
from agentls.core.sqlite import SqliteFile, process_alive, process_start_ticks
from agentls.core.state_check import StateError
from agentls.core.stores.ledger import Hold, RunLimit, ScopeRow, ScopeTotals, WakeCallback

log = logging.getLogger("agentls.core.budget")

SCHEMA = """
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

# Polling is how a waiting call sees other processes' settles on a file.
_POLL_MAX_S = 0.25


class SqliteLedgerTx:
    """The ledger inside one SQLite transaction (see stores/ledger.py for each operation)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Raw SQL in this transaction (tests and repairs look inside the file)."""
        return self.conn.execute(sql, params)

    def states(
        self, scopes: Sequence[str], waiter_id: str | None, run: RunLimit | None = None
    ) -> list[ScopeRow]:
        if run is not None:  # two statements cost nothing much in a file
            self.set_run_limit(run.scope, run.limit)
        rows = self.conn.execute(_state_sql(len(scopes)), (waiter_id, *scopes)).fetchall()
        return [ScopeRow(*row) for row in rows]

    def set_run_limit(self, scope: str, limit: int | None) -> None:
        self.conn.execute(
            "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim WHERE lim IS NOT excluded.lim",
            (scope, limit, time.time()),
        )

    def hold(self, hold: Hold) -> str | None:
        # BEGIN IMMEDIATE holds the write lock since `states`: nothing changed in between.
        self.conn.execute(
            "INSERT INTO reservations (id, run_id, agent, tokens, pid, pid_start, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hold.id, hold.run_id, hold.agent, hold.tokens, os.getpid(), own_start(), time.time()),
        )
        self.conn.executemany(
            "INSERT INTO reserved (scope, res_id, tokens) VALUES (?, ?, ?)",
            [(s, hold.id, hold.tokens) for s in hold.scopes],
        )
        return None

    def join_queue(self, waiter_id: str, scopes: Sequence[str]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO waiters (scope, id, pid, pid_start, since) "
            "VALUES (?, ?, ?, ?, ?)",
            [(s, waiter_id, os.getpid(), own_start(), time.time()) for s in scopes],
        )

    def leave_queue(self, waiter_id: str) -> None:
        self.conn.execute("DELETE FROM waiters WHERE id = ?", (waiter_id,))

    def settle(
        self,
        hold_id: str,
        run_id: str,
        agent: str,
        scopes: Sequence[str],
        usage: Usage | None,
        held: int | None = None,  # every look here reads the file: nothing to keep up to date
    ) -> None:
        self._drop(hold_id)
        if usage is None:
            return
        now = time.time()
        self.conn.executemany(
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
                for s in scopes
            ],
        )

    def _drop(self, hold_id: str) -> None:
        self.conn.execute("DELETE FROM reserved WHERE res_id = ?", (hold_id,))
        self.conn.execute("DELETE FROM reservations WHERE id = ?", (hold_id,))

    def set_limit(self, scope: str, limit: int | None, *, lower_only: bool = False) -> None:
        # One statement, so another process's `budget set` cannot slip between a read and a write.
        only_lower = " WHERE scopes.lim IS NULL OR scopes.lim > excluded.lim" if lower_only else ""
        self.conn.execute(
            "INSERT INTO scopes (scope, lim, updated) VALUES (?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim, updated = excluded.updated"
            + only_lower,
            (scope, limit, time.time()),
        )
        if scope != TOTAL and limit is None:
            # An agent without a limit and without spend is nothing to show: a limit set for a
            # typo and then removed leaves no trace in the listing.
            self.conn.execute(
                "DELETE FROM scopes WHERE scope = ? AND lim IS NULL AND input = 0 AND cached = 0 "
                "AND output = 0 AND reasoning = 0",
                (scope,),
            )

    def open_window(self, window: str, template: str) -> None:
        self.conn.execute(
            "INSERT INTO scopes (scope, lim, updated) SELECT ?, lim, ? FROM scopes WHERE scope = ? "
            "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim",
            (window, time.time(), template),
        )

    def limits(self) -> list[ScopeTotals]:
        rows = self.conn.execute(
            "SELECT s.scope, s.lim, s.input, s.cached, s.output, s.reasoning, s.estimated, "
            "(SELECT COALESCE(SUM(r.tokens), 0) FROM reserved r WHERE r.scope = s.scope) "
            "FROM scopes s WHERE s.lim IS NOT NULL AND s.scope NOT LIKE 'run:%' ORDER BY s.scope"
        ).fetchall()
        return [ScopeTotals(r[0], r[1], usage_of(r[2:7]), int(r[7])) for r in rows]

    def reset(self, agent: str | None) -> None:
        where, params = ("scope = ? OR scope LIKE 'agent:%'", (TOTAL,))
        if agent is not None:
            where, params = "scope = ?", (f"agent:{agent}",)
        self.conn.execute(
            "UPDATE scopes SET input = 0, cached = 0, output = 0, reasoning = 0, "
            f"estimated = 0, updated = ? WHERE {where}",
            (time.time(), *params),
        )

    def sweep(self) -> int:
        owners = self.conn.execute(
            "SELECT pid, pid_start FROM reservations WHERE pid != ? OR pid_start IS NOT ? "
            "UNION SELECT pid, pid_start FROM waiters WHERE pid != ? OR pid_start IS NOT ?",
            (os.getpid(), own_start(), os.getpid(), own_start()),
        ).fetchall()
        dropped = 0
        for pid, start in owners:
            if process_alive(pid, start_ticks=start):
                continue
            ids = [
                r[0]
                for r in self.conn.execute(
                    "SELECT id FROM reservations WHERE pid = ? AND pid_start IS ?", (pid, start)
                )
            ]
            self.conn.executemany("DELETE FROM reserved WHERE res_id = ?", [(i,) for i in ids])
            self.conn.executemany("DELETE FROM reservations WHERE id = ?", [(i,) for i in ids])
            self.conn.execute("DELETE FROM waiters WHERE pid = ? AND pid_start IS ?", (pid, start))
            dropped += len(ids)
            log.info("dropped %d reservation(s) of dead process %d", len(ids), pid)
        return dropped

    def totals(self) -> list[ScopeTotals]:
        rows = self.conn.execute(
            "SELECT scope, lim, input, cached, output, reasoning, estimated FROM scopes "
            "WHERE scope = ? OR scope LIKE 'agent:%'",
            (TOTAL,),
        ).fetchall()
        reserved = dict(
            self.conn.execute(
                "SELECT scope, SUM(tokens) FROM reserved "
                "WHERE scope = ? OR scope LIKE 'agent:%' GROUP BY scope",
                (TOTAL,),
            ).fetchall()
        )
        by_scope = {r[0]: r for r in rows}
        return [
            ScopeTotals(
                scope,
                by_scope[scope][1] if scope in by_scope else None,
                usage_of(by_scope[scope][2:] if scope in by_scope else None),
                int(reserved.get(scope, 0)),
            )
            for scope in sorted(set(by_scope) | set(reserved))
        ]

    def scope_totals(self, scope: str) -> ScopeTotals:
        row = self.conn.execute(
            "SELECT lim, input, cached, output, reasoning, estimated FROM scopes WHERE scope = ?",
            (scope,),
        ).fetchone()
        (reserved,) = self.conn.execute(
            "SELECT COALESCE(SUM(tokens), 0) FROM reserved WHERE scope = ?", (scope,)
        ).fetchone()
        return ScopeTotals(
            scope, row[0] if row else None, usage_of(row[1:] if row else None), int(reserved)
        )

    def waiting_calls(self) -> int:
        return int(self.conn.execute("SELECT COUNT(DISTINCT id) FROM waiters").fetchone()[0])


class SqliteLedgerStore:
    """The ledger in one SQLite file shared by threads and processes (`path=None`: in memory)."""

    shared = False
    poll_max_seconds = _POLL_MAX_S
    gather_seconds = 0.0

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.where = str(path) if path is not None else ":memory:"
        self.db = SqliteFile(path, SCHEMA, synchronous="NORMAL")

    @contextlib.contextmanager
    def transaction(
        self, *, write: bool = True, flush_later: bool = False
    ) -> Iterator[SqliteLedgerTx]:
        # A local file's commit waits for no server (and, with synchronous NORMAL, syncs the disk
        # at checkpoints only): nothing to defer, so `flush_later` changes nothing here.
        with self.db.transaction(write=write) as conn:
            yield SqliteLedgerTx(conn)

    def watch(self, wake: WakeCallback) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # other processes' settles are seen by polling

    def held(self, hold_id: str, held: bool) -> None:
        """Nothing to renew: a reservation lives as long as its process (see `sweep`)."""

    def keep(
        self, hold_id: str, run_id: str, agent: str, scopes: Sequence[str], usage: Usage
    ) -> bool:
        return False  # a file is never away; its errors stand

    def unusable(self) -> StateError:
        from agentls.core.ledger_values import REPAIR_HINT, bad_values, summary

        with self.transaction(write=False) as tx:
            bad = bad_values(tx.conn)
        problem = summary(bad) if bad else "holds a number the budget cannot use"
        return StateError(self.path or Path("ledger.db"), problem, REPAIR_HINT)

    def close(self) -> None:
        self.db.close()


def usage_of(row: Sequence[int] | None) -> Usage:
    if row is None:
        return Usage()
    return Usage(
        input_tokens=row[0],
        cached_input_tokens=row[1],
        output_tokens=row[2],
        reasoning_tokens=row[3],
        estimated=bool(row[4]),
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


def own_start() -> str | None:
    """This process's start time (cached per pid: a forked child has its own)."""
    pid = os.getpid()
    if pid not in _own_start_cache:
        _own_start_cache[pid] = process_start_ticks(pid)
    return _own_start_cache[pid]
