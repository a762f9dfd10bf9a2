"""The ledger in a team's PostgreSQL database, shared by every machine of the team.

Writes go through the schema's functions (stores/pg_schema.py): a reservation is one conditional
UPDATE a scope under its row lock (`... WHERE lim - input - output - reserved >= n`), so no
interleaving of machines holds or commits more than a limit. Each write transaction first takes
the ledger's advisory lock, so that transactions holding several calls' operations (batches, see
core/ledger_worker.py) never deadlock on each other's rows, and so that a call's look at its
scopes and its reservation see the same state, as on SQLite.

Reservations and places in the wait queue are leases (stores/pg_threads.py). A sweep frees
expired leases of any machine and, at once, those of processes of this machine that are gone.

When the database is away as a call ends, its usage is kept in the workspace's `ledger.journal`
in the user's state folder (stores/journal.py) and committed, once, before anything else when the
database is back; new calls are refused meanwhile (DatabaseUnavailable).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from agentls.core.budget_limits import TOTAL
from agentls.core.events import Usage
from agentls.core.sqlite import process_alive
from agentls.core.state_check import StateError
from agentls.core.stores.identity import Origin, origin
from agentls.core.stores.journal import SUFFIX, Journal, journal_path
from agentls.core.stores.ledger import Hold, RunLimit, ScopeRow, ScopeTotals, WakeCallback
from agentls.core.stores.pg_ledger_sql import STATES, STATES_SETTING_RUN, names_param, with_names
from agentls.core.stores.pg_looks import Looks
from agentls.core.stores.pg_schema import check_version
from agentls.core.stores.pg_threads import CHANNEL, LeaseRenewer, Listener, WalFlusher
from agentls.core.stores.postgres import (
    SCHEMA,
    DatabaseRefused,
    DatabaseUnavailable,
    Session,
    database_error,
)
from agentls.core.stores.sqlite_ledger import own_start

log = logging.getLogger("agentls.core.budget")

# How long a reservation outlives its holder's last renewal (renewed every third of it).
DEFAULT_LEASE_SECONDS = 30.0
# Waiting calls look at the ledger at least this often (notifications may be lost).
_POLL_MAX_S = 1.0
# How long the ledger's worker waits for a batch to fill while calls are in flight: a
# transaction here costs its statements, a flush and a hand-over of results, so fewer and
# fuller ones cost every call less (docs/team.md, "Performance").
GATHER_SECONDS = 0.03
# The ledger's write lock (pg_advisory_xact_lock), one key for every agentls database user.
LEDGER_LOCK = 0x6167_656E_746C_7302
JOURNAL = "ledger" + SUFFIX

_USAGE_COLUMNS = "input, cached, output, reasoning, estimated"


class HoldRefused(Exception):
    """A hold answered late (`PgLedgerTx.defer_checks`) did not fit: the batch is run again."""


class PgLedgerTx:
    """The ledger inside one PostgreSQL transaction (see stores/ledger.py for each operation)."""

    def __init__(self, conn: Any, store: PgLedgerStore) -> None:
        self.conn = conn
        self.store = store
        self.origin: Origin = store.origin
        # Whether this transaction may have made room: waiters elsewhere are notified at commit.
        self.freed = False
        # Whether it holds what must survive a crash of the server (usage, limits): then its
        # commit waits for the disk; reservations and the queue are leases, which need not.
        self.durable = False
        # How many such writes it made: the ledger's worker tells which operations made one.
        self.durable_writes = 0
        # Set at commit when the commit did not wait for the disk it needed: waits for it.
        self.flush: Callable[[], None] | None = None
        # Holds whose answer is read at the end (`defer_checks`), with their ids.
        self._deferred: list[tuple[Any, str]] | None = None
        # The batch's scopes as read once and kept up to date (`prefetch`), or None.
        self._looks: Looks | None = None

    def _durable(self) -> None:
        self.durable = True
        self.durable_writes += 1

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Raw SQL in this transaction (tests look inside)."""
        self._looks = None  # it may write anything
        return self.conn.execute(sql, params)

    def prefetch(self, scopes: Sequence[str]) -> None:
        """Read every scope the batch's calls will look at, in one statement: their looks are
        then answered here (stores/pg_looks.py)."""
        self._looks = Looks.read(self.conn, scopes)

    def states(
        self, scopes: Sequence[str], waiter_id: str | None, run: RunLimit | None = None
    ) -> list[ScopeRow]:
        looks = self._looks
        if looks is not None and looks.knows([*scopes, *([run.scope] if run else [])]):
            if run is not None and looks.run_limit_differs(run):
                self.set_run_limit(run.scope, run.limit)  # goes out with the next read
            return looks.rows(scopes, waiter_id)
        params: tuple[Any, ...]
        names, value = names_param(scopes)
        if run is None:
            sql, params = STATES, (waiter_id, value)
        else:
            sql, params = STATES_SETTING_RUN, (run.scope, run.limit, value, waiter_id)
        rows = self.conn.execute(with_names(sql, names), params).fetchall()
        return [ScopeRow(scope, lim, int(c), int(r), int(w)) for scope, lim, c, r, w in rows]

    def set_run_limit(self, scope: str, limit: int | None) -> None:
        if self._looks is not None:
            self._looks.set_run_limit(scope, limit)
        # Not durable: lost in a crash of the server, the run's next call sets it again. Called
        # only where it differs, so a call of a run whose limit is set writes nothing (and, being
        # a write whose result nobody reads, it goes out with the next look: no round trip).
        self.conn.execute(
            f"SELECT {SCHEMA}.set_run_limit(%s, %s) WHERE NOT EXISTS (SELECT 1 FROM "
            f"{SCHEMA}.scopes WHERE scope = %s AND lim IS NOT DISTINCT FROM %s)",
            (scope, limit, scope, limit),
        )

    def hold(self, hold: Hold) -> str | None:
        o = self.origin
        names, value = names_param(hold.scopes)
        cur = self.conn.execute(
            with_names(
                f"SELECT {SCHEMA}.reserve(%s, %s, %s, %s, $NAMES, %s, %s, %s, %s, %s, %s, %s, %s)",
                names,
            ),
            (
                hold.id, hold.run_id, hold.agent, hold.tokens, value, o.user,
                o.host, o.pid_space, os.getpid(), own_start(), o.workspace, o.front_end,
                self.store.lease_seconds,
            ),
        )  # fmt: skip
        if self._deferred is not None:
            self._deferred.append((cur, hold.id))
            if self._looks is not None:
                self._looks.held(hold.scopes, hold.tokens)
            return None
        row = cur.fetchone()
        refused = None if row is None else row[0]
        if refused is None and self._looks is not None:
            self._looks.held(hold.scopes, hold.tokens)
        return refused

    def defer_checks(self) -> None:
        """Let `hold` answer without waiting for the server, for a batch of several calls.

        Under the ledger's lock, taken by every writer, nothing changes between a call's look
        and its hold, so a hold that follows a look cannot fail (as on SQLite); its answer then
        comes back with the next call's look, one round trip for both. Should one fail all the
        same (someone wrote without the lock), `check_holds` raises before the commit: the
        batch is rolled back and its calls run again one to a transaction, where each hold
        answers at once.
        """
        self._deferred = []

    def check_holds(self) -> None:
        for cur, hold_id in self._deferred or ():
            row = cur.fetchone()
            if row is not None and row[0] is not None:
                raise HoldRefused(f"reservation {hold_id} did not fit {row[0]} after all")

    def join_queue(self, waiter_id: str, scopes: Sequence[str]) -> None:
        o = self.origin
        self.conn.execute(
            f"SELECT {SCHEMA}.join_queue(%s, %s, %s, %s, %s, %s, %s)",
            (
                waiter_id, list(scopes), o.host, o.pid_space, os.getpid(), own_start(),
                self.store.lease_seconds,
            ),
        )  # fmt: skip
        if self._looks is not None:
            self._looks.queued(waiter_id, scopes)

    def leave_queue(self, waiter_id: str) -> None:
        self.conn.execute(f"SELECT {SCHEMA}.leave_queue(%s)", (waiter_id,))
        self.freed = True  # fewer share what is left
        if self._looks is not None:
            self._looks.left(waiter_id)

    def settle(
        self,
        hold_id: str,
        run_id: str,
        agent: str,
        scopes: Sequence[str],
        usage: Usage | None,
        held: int | None = None,
    ) -> None:
        settle(self.conn, self.origin, hold_id, run_id, agent, scopes, usage)
        if self._looks is not None:
            self._looks.settled(scopes, held, usage)
        self.freed = True
        if usage is not None:
            self._durable()

    def set_limit(self, scope: str, limit: int | None, *, lower_only: bool = False) -> None:
        self.freed = True
        self._durable()
        self._looks = None
        only_lower = " WHERE s.lim IS NULL OR s.lim > excluded.lim" if lower_only else ""
        with self._admin("change a limit"):
            self.conn.execute(
                f"INSERT INTO {SCHEMA}.scopes AS s (scope, lim, listed) VALUES (%s, %s, true) "
                "ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim, listed = true, "
                "updated = now()" + only_lower,
                (scope, limit),
            )
            if scope != TOTAL and limit is None:
                self.conn.execute(
                    f"UPDATE {SCHEMA}.scopes SET listed = false WHERE scope = %s AND lim IS NULL "
                    "AND input = 0 AND cached = 0 AND output = 0 AND reasoning = 0",
                    (scope,),
                )

    def open_window(self, window: str, template: str) -> None:
        # Not durable: lost in a crash of the server, the next call opens it again (and usage
        # committed into it comes later in the server's log, so it cannot outlive the window).
        self.conn.execute(f"SELECT {SCHEMA}.open_window(%s, %s)", (window, template))
        if self._looks is not None:
            self._looks.forget([window])

    def limits(self) -> list[ScopeTotals]:
        rows = self.conn.execute(
            f"SELECT scope, lim, {_USAGE_COLUMNS}, reserved FROM {SCHEMA}.scopes "
            "WHERE lim IS NOT NULL AND scope NOT LIKE 'run:%%' ORDER BY scope"
        ).fetchall()
        return [_totals(row) for row in rows]

    def reset(self, agent: str | None) -> None:
        self.freed = True
        self._durable()
        self._looks = None
        where, params = "scope = %s OR scope LIKE 'agent:%%'", (TOTAL,)
        if agent is not None:
            where, params = "scope = %s", (f"agent:{agent}",)
        with self._admin("reset usage"):
            self.conn.execute(
                f"UPDATE {SCHEMA}.scopes SET input = 0, cached = 0, output = 0, reasoning = 0, "
                f"estimated = false, updated = now() WHERE {where}",
                params,
            )

    @contextlib.contextmanager
    def _admin(self, doing: str) -> Iterator[None]:
        """An admin's write: a member's attempt is refused by the database, said as such."""
        import psycopg

        try:
            with self.conn.pipeline():  # its end reads the outcome, so a refusal is raised here
                yield
        except psycopg.errors.InsufficientPrivilege as exc:
            raise database_error(self.store.url, exc, doing=doing) from None

    def sweep(self) -> int:
        space = self.origin.pid_space
        owners = self.conn.execute(
            f"SELECT pid, pid_start FROM {SCHEMA}.reservations WHERE pid_space = %s UNION "
            f"SELECT pid, pid_start FROM {SCHEMA}.waiters WHERE pid_space = %s",
            (space, space),
        ).fetchall()
        dead = [
            (pid, start)
            for pid, start in owners
            if not (pid == os.getpid() and start == own_start())
            and not process_alive(pid, start_ticks=start)
        ]
        row = self.conn.execute(
            f"SELECT {SCHEMA}.sweep(%s, %s::integer[], %s::text[])",
            (space, [p for p, _ in dead], [s for _, s in dead]),
        ).fetchone()
        freed = int(row[0]) if row else 0
        self.freed = self.freed or freed > 0
        if freed:
            self._looks = None  # what it freed is the server's to say
            log.info("freed %d reservation(s) of holders that are gone", freed)
        return freed

    def totals(self) -> list[ScopeTotals]:
        rows = self.conn.execute(
            f"SELECT scope, lim, {_USAGE_COLUMNS}, reserved FROM {SCHEMA}.scopes "
            "WHERE (scope = %s OR scope LIKE 'agent:%%') AND (listed OR reserved > 0) "
            "ORDER BY scope",
            (TOTAL,),
        ).fetchall()
        return [_totals(row) for row in rows]

    def scope_totals(self, scope: str) -> ScopeTotals:
        row = self.conn.execute(
            f"SELECT scope, lim, {_USAGE_COLUMNS}, reserved FROM {SCHEMA}.scopes WHERE scope = %s",
            (scope,),
        ).fetchone()
        return _totals(row) if row else ScopeTotals(scope, None, Usage(), 0)

    def waiting_calls(self) -> int:
        row = self.conn.execute(
            f"SELECT count(DISTINCT id) FROM {SCHEMA}.waiters WHERE expires > now()"
        ).fetchone()
        return int(row[0]) if row else 0


def settle(
    conn: Any,
    o: Origin,
    hold_id: str,
    run_id: str,
    agent: str,
    scopes: Sequence[str],
    usage: Usage | None,
) -> None:
    u = usage or Usage()
    names, value = names_param(scopes)
    conn.execute(
        with_names(
            f"SELECT {SCHEMA}.settle(%s, %s, %s, %s, $NAMES, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            names,
        ),
        (
            hold_id, usage is not None, run_id, agent, value, u.input_tokens,
            u.cached_input_tokens, u.output_tokens, u.reasoning_tokens, u.estimated, o.user,
            o.host, o.workspace, o.front_end,
        ),
    )  # fmt: skip


def _totals(row: Sequence[Any]) -> ScopeTotals:
    scope, lim, inp, cached, out, reasoning, estimated, reserved = row
    usage = Usage(
        input_tokens=int(inp),
        cached_input_tokens=int(cached),
        output_tokens=int(out),
        reasoning_tokens=int(reasoning),
        estimated=bool(estimated),
    )
    return ScopeTotals(scope, lim, usage, int(reserved))


class PgLedgerStore:
    """The team ledger: one session for transactions, leases and a listener in the background."""

    path: Path | None = None
    shared = True
    poll_max_seconds = _POLL_MAX_S
    gather_seconds = GATHER_SECONDS

    def __init__(
        self,
        url: str,
        *,
        state: Path | None = None,
        workspace: Path | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.url = url
        self.session = Session(url)
        self.where = self.session.where
        self.lease_seconds = lease_seconds
        self.origin = origin(workspace)
        self.journal = Journal(journal_path(state, JOURNAL)) if state is not None else None
        self.leases = LeaseRenewer(url, lease_seconds)
        self.listener = Listener(url, poll_seconds=_POLL_MAX_S)
        with self.session.transaction() as conn:
            check_version(url, conn)
            usable = WalFlusher.usable(conn)
        # Batches of the ledger's worker commit without waiting for the disk and flush it
        # afterwards, outside the write lock (None: they wait at commit, as other writes do).
        self.flusher = WalFlusher(url) if usable else None
        self._replay()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True, flush_later: bool = False) -> Iterator[PgLedgerTx]:
        if self.journal is not None and self.journal.pending():
            self._replay()  # back after being away: what was kept is committed first
        with self.session.transaction() as conn:
            if write:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK,))
            tx = PgLedgerTx(conn, self)
            yield tx
            # What the commit needs, in one statement (each costs the client as much as a row).
            ends, params = [], []
            if tx.freed:  # delivered at commit, once however many calls settled
                ends.append("pg_notify(%s, '')")
                params.append(CHANNEL)
            flusher = self.flusher if flush_later else None
            if write and (not tx.durable or flusher is not None):
                # Leases only: lost in a crash of the server, they would have run out anyway.
                # Or usage whose caller waits for `tx.flush` instead, outside the write lock.
                ends.append("set_config('synchronous_commit', 'off', true)")
            if tx.durable and flusher is not None:
                # Read with the commit: the flush must happen on the server that took the
                # commit, not on one restarted since (which may have lost it).
                ends.append("pg_postmaster_start_time()")
            if ends:
                end = conn.execute(f"SELECT {', '.join(ends)}", params)
                if tx.durable and flusher is not None:
                    tx.flush = _Flush(flusher, end)
            # After the statement above is queued, so the holds' answers come back with it.
            tx.check_holds()

    def _replay(self) -> None:
        """Commit what was kept while the database was away (each once: idempotent on its id)."""
        if self.journal is None:
            return

        def apply(entries: list[dict[str, Any]]) -> None:
            with self.session.transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK,))
                for e in entries:
                    kept = Origin(e.get("user"), e["host"], "", e.get("workspace"))
                    usage = Usage.model_validate(e["usage"])
                    settle(conn, kept, e["id"], e["run_id"], e["agent"], e["scopes"], usage)
                conn.execute(f"NOTIFY {CHANNEL}")

        if count := self.journal.replay(apply):
            log.warning(
                "committed the usage of %d call(s) kept while %s was away", count, self.where
            )

    def watch(self, wake: WakeCallback) -> contextlib.AbstractContextManager[None]:
        return _watching(self.listener, wake)

    def held(self, hold_id: str, held: bool) -> None:
        self.leases.hold(hold_id, held)

    def keep(
        self, hold_id: str, run_id: str, agent: str, scopes: Sequence[str], usage: Usage
    ) -> bool:
        if self.journal is None:
            return False
        o = self.origin
        self.journal.append(
            [
                {
                    "id": hold_id, "run_id": run_id, "agent": agent, "scopes": list(scopes),
                    "usage": usage.model_dump(), "user": o.user, "host": o.host,
                    "workspace": o.workspace,
                }
            ]
        )  # fmt: skip
        log.warning(
            "%s is away: the usage of run %s's call is kept in %s until it is back",
            self.where,
            run_id,
            self.journal.path,
        )
        return True

    def unusable(self) -> StateError:
        return DatabaseRefused(
            self.where,
            f"holds a number the budget cannot use in {SCHEMA}.scopes",
            "an admin checks its limits and counts (whole numbers of tokens, cached <= input)",
        )

    def close(self) -> None:
        self.leases.close()
        self.listener.close()
        if self.flusher is not None:
            self.flusher.close()
        self.session.close()


class _Flush:
    """The wait that makes a commit durable: a flush of the server that took it."""

    def __init__(self, flusher: WalFlusher, end: Any) -> None:
        self.flusher = flusher
        self.end = end  # the commit's last statement: the server's start time is its last column

    @functools.cached_property
    def server(self) -> Any:
        """Which server took the commit (its start time): one flush serves every commit it took."""
        row = self.end.fetchone()
        return row[-1] if row else None

    def __call__(self) -> None:
        self.flusher.flush(self.server)


@contextlib.contextmanager
def _watching(listener: Listener, wake: WakeCallback) -> Iterator[None]:
    listener.add(wake)
    try:
        yield
    finally:
        listener.remove(wake)


__all__ = ["DEFAULT_LEASE_SECONDS", "DatabaseUnavailable", "PgLedgerStore", "PgLedgerTx"]
