"""The two background jobs of a team ledger, each a thread with a connection of its own that runs
only while there is work: renewing this process's leases, and listening for settles elsewhere.

Leases: every reservation (and every place in the wait queue) expires unless its holder renews it;
`LeaseRenewer` renews what this process holds every third of the lease, so a process or machine
that dies frees what it held within one lease. Renewals fail quietly while the database is away
(the leases may then run out, which is what they are for).

Settles: `Listener` LISTENs on the ledger's channel (a transaction that settles, frees or
sweeps a reservation, or changes a limit, NOTIFYs it, delivered at its commit) and wakes this
process's waiting calls. A
notification sent while the listener was disconnected is lost, so waiting calls also poll.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from agentls.core.stores.postgres import SCHEMA, DatabaseError, connect

log = logging.getLogger("agentls.core.budget")

CHANNEL = f"{SCHEMA}_ledger"


class LeaseRenewer:
    """Renews the leases of the ids this process holds, while it holds any."""

    def __init__(self, url: str, lease_seconds: float) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        self._ids: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pid = os.getpid()
        self.renewals = 0  # rounds that reached the database (diagnostics, tests)

    def hold(self, lease_id: str, held: bool) -> None:
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not ours
                self._pid, self._thread, self._ids = os.getpid(), None, set()
            if held:
                self._ids.add(lease_id)
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(
                        target=self._run, name="agentls-ledger-leases", daemon=True
                    )
                    self._thread.start()
            else:
                self._ids.discard(lease_id)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._ids.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _run(self) -> None:
        conn: Any = None
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, self.lease_seconds / 3)
                    ids = sorted(self._ids)
                    if not ids or self._closed:
                        self._thread = None
                        return
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.url)
                    found = {
                        r[0]
                        for r in conn.execute(
                            f"SELECT {SCHEMA}.renew(%s, %s)", (ids, self.lease_seconds)
                        )
                    }
                    self.renewals += 1
                except (DatabaseError, Exception) as exc:  # away: the next round tries again
                    log.debug("lease renewal failed: %s", exc)
                    conn = _closed(conn)
                    continue
                with self._cond:
                    # Gone from the database (expired while it was away, or settled): stop.
                    self._ids -= {i for i in ids if i not in found and _is_reservation(i)}
        finally:
            _closed(conn)


def _is_reservation(lease_id: str) -> bool:
    """Waiters' ids are renewed too but `renew` reports reservations only."""
    return not lease_id.startswith("w-")


class Listener:
    """Calls every registered wake when the ledger's channel is notified, while any is registered."""

    def __init__(self, url: str, *, poll_seconds: float = 1.0) -> None:
        self.url = url
        self.poll_seconds = poll_seconds
        # How often the thread looks up from LISTEN to see whether anyone still waits.
        self._look_up = min(poll_seconds, 0.25)
        self._wakes: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.listening = threading.Event()  # set while LISTEN is in force (tests)

    def add(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not ours
                self._pid, self._thread, self._wakes = os.getpid(), None, []
            self._wakes.append(wake)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="agentls-ledger-listen", daemon=True
                )
                self._thread.start()

    def remove(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._wakes:
                self._wakes.remove(wake)

    def close(self) -> None:
        with self._lock:
            self._wakes.clear()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _run(self) -> None:
        conn: Any = None
        try:
            while True:
                with self._lock:
                    if not self._wakes:
                        self._thread = None
                        return
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.url)
                        conn.execute(f"LISTEN {CHANNEL}")
                        self.listening.set()
                    for _ in conn.notifies(timeout=self._look_up):
                        self._wake()
                except Exception as exc:  # away: waiting calls poll meanwhile
                    log.debug("ledger listener: %s", exc)
                    self.listening.clear()
                    conn = _closed(conn)
                    threading.Event().wait(self.poll_seconds)
        finally:
            self.listening.clear()
            _closed(conn)

    def _wake(self) -> None:
        with self._lock:
            wakes = list(self._wakes)
        for wake in wakes:
            try:
                wake()
            except Exception:
                log.exception("waking a waiting call failed")


def _closed(conn: Any) -> Any:
    """Close `conn` if open; None, for the caller to forget it."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
    return None


class WalFlusher:
    """Waits until what this process committed without waiting for the disk is on the disk.

    The ledger's batches commit with `synchronous_commit = off`, so its write lock is released
    before the server syncs; usage must still survive a crash of the server before its caller is
    told it is committed. A transaction that writes WAL and commits synchronously flushes the WAL
    up to its own commit record, which lies after every commit that ended before it began: one
    such flush makes all of them durable. A transactional logical-decoding message is the
    smallest such write (no table, no row lock; consumers of logical decoding ignore messages
    unless asked for them).
    """

    SQL = "SELECT pg_postmaster_start_time(), pg_logical_emit_message(true, 'agentls', '')"

    DOING = "flush the ledger's commits to disk"

    def __init__(self, url: str) -> None:
        from agentls.core.stores.postgres import shown_url

        self.url = url
        self.where = shown_url(url)
        self._conn: Any = None
        self._pid = os.getpid()
        self.flushes = 0  # flushes that reached the disk (diagnostics, tests)

    @staticmethod
    def usable(conn: Any) -> bool:
        """Whether this role may write such a message (some managed servers revoke it)."""
        row = conn.execute(
            "SELECT has_function_privilege('pg_logical_emit_message(boolean, text, text)', "
            "'EXECUTE')"
        ).fetchone()
        return bool(row and row[0])

    def flush(self, committed_on: Any) -> None:
        """Return once every commit this process made before the call is durable.
        `committed_on` is the server's `pg_postmaster_start_time()` as read with the commit.

        Raises NotDurable when that cannot be known: the server is away, or it started again
        since the commit (which a crash may have lost). The caller then keeps what it committed
        and commits it again, idempotently, when the database is back.
        """
        from agentls.core.stores.db_errors import DatabaseUnavailable, NotDurable

        for attempt in range(2):
            try:
                now_on = self._start_time_after_flush()
                break
            except DatabaseUnavailable as exc:
                if attempt:
                    raise NotDurable(exc.where, exc.problem, exc.hint) from None
                # A connection from before a restart: once more on a new one; the start time
                # then tells whether the restart came before the commit or after it.
        if now_on != committed_on:
            raise NotDurable(
                self.where,
                "restarted after a commit was made and before it was known to be on disk",
                "the usage is kept and committed again, once, now that it is back",
            )
        self.flushes += 1

    def _start_time_after_flush(self) -> Any:
        """One statement, its own transaction (the connection autocommits): it commits
        synchronously, so it returns once the WAL is on disk up to its commit."""
        import psycopg

        from agentls.core.stores.postgres import connect, database_error

        try:
            if self._conn is None or self._conn.closed or self._pid != os.getpid():
                self._conn, self._pid = connect(self.url), os.getpid()
                # Whatever the server's default: this flush is what makes usage durable.
                self._conn.execute("SET synchronous_commit = on")
            row = self._conn.execute(self.SQL).fetchone()
        except psycopg.Error as exc:
            self._conn = _closed(self._conn)
            raise database_error(self.url, exc, doing=self.DOING) from None
        return row[0] if row else None

    def close(self) -> None:
        self._conn = _closed(self._conn)
