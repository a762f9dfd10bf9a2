"""Usage a team database has taken is on its disk before anyone is told so.

The ledger's batches commit without waiting for the server's disk (so the write lock every
team member's calls take is not held while it syncs) and wait for the disk afterwards
(stores/pg_threads.py WalFlusher). These tests crash a real server at the worst moment: with
its WAL writer frozen, what a commit wrote stays in the server's memory until someone flushes
it, and a kill -9 of every server process loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from tests.rig.postgres import PostgresCluster, team_database

from agentls.core.budget import TokenBudgeter
from agentls.core.events import Usage
from agentls.core.stores.ledger import Hold
from agentls.core.stores.pg_ledger import HoldRefused, PgLedgerStore
from agentls.core.stores.pg_threads import WalFlusher
from agentls.core.stores.postgres import DatabaseUnavailable, shown_url


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    """A cluster of this test's own: it is crashed, so no other test may share it."""
    with PostgresCluster.start() as pg:
        # Nothing else writes pages (which would flush the WAL first) while the test looks.
        pg.sql("ALTER SYSTEM SET bgwriter_lru_maxpages = 0")
        pg.sql("ALTER SYSTEM SET autovacuum = off")
        pg.sql("SELECT pg_reload_conf()")
        yield pg


def _server_processes(pg: PostgresCluster) -> list[psutil.Process]:
    pid = int((pg.data / "postmaster.pid").read_text().split()[0])
    main = psutil.Process(pid)
    return [main, *main.children(recursive=True)]


def _freeze_wal_writer(pg: PostgresCluster, url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'"
        ).fetchone()
    assert row is not None, "the server has no WAL writer to freeze"
    os.kill(row[0], signal.SIGSTOP)


def _crash(pg: PostgresCluster) -> None:
    """Power loss for the server: every process killed at once; only what reached the OS stays."""
    procs = _server_processes(pg)
    # Stopped first, so none of them sees another die and acts on it (a backend whose client
    # just left may also be ending by itself: that one is already gone, which is no fault).
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(sig)
    psutil.wait_procs(procs, timeout=30)
    pg.restart()


async def test_usage_whose_commit_returned_survives_a_crash_of_the_server(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = team_database(cluster, "durable")
    with TokenBudgeter.for_workspace(tmp_path, database_url=url) as budgeter:
        budgeter.set_limit(100_000)
        _freeze_wal_writer(cluster, url)
        for _ in range(3):
            r = await budgeter.areserve(
                run_id=uuid.uuid4().hex, agent="explain", prompt_tokens=80, max_tokens=100
            )
            await budgeter.acommit(r, Usage(input_tokens=80, output_tokens=40))
        _crash(cluster)
    with TokenBudgeter.for_workspace(tmp_path, database_url=url) as after:
        assert after.snapshot().used == 3 * 120


def test_a_flush_after_the_server_restarted_never_vouches_for_a_commit_it_may_have_lost(
    cluster: PostgresCluster,
) -> None:
    url = team_database(cluster, "restarted")
    flusher = WalFlusher(url)
    try:
        flusher.flush(_start_time(url))  # the server that took the commit: safe
        assert flusher.flushes == 1
        committed_on = _start_time(url)
        cluster.stop("immediate")
        cluster.restart()
        with pytest.raises(DatabaseUnavailable, match="restarted after a commit was made"):
            flusher.flush(committed_on)
        assert flusher.flushes == 1
    finally:
        flusher.close()


async def test_a_limit_change_the_server_may_have_lost_is_said_to_be_maybe_lost(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    """The server restarts after a limit change committed and before it was on disk: the editor
    is told the change may be lost and how to check, not that it is kept (only usage is)."""
    url = team_database(cluster, "limit-lost")
    with TokenBudgeter.for_workspace(tmp_path, database_url=url) as budgeter:
        await budgeter.aset_limit(100_000)  # its flush opens the flusher's connection
        flusher = _backend_that_ran(url, WalFlusher.SQL)
        os.kill(flusher, signal.SIGSTOP)  # the next flush waits for it
        change = asyncio.create_task(budgeter.aset_limit(50_000))
        deadline = time.monotonic() + 30
        while _total_limit(url) != 50_000:  # committed, not yet known to be on disk
            assert time.monotonic() < deadline, "the limit change never committed"
            await asyncio.sleep(0.05)
        assert not change.done()
        _crash(cluster)
        with pytest.raises(DatabaseUnavailable) as raised:
            await change
    said = str(raised.value)  # the flush found the server away, or restarted since the commit
    assert said.startswith(f"the team database {shown_url(url)} ")
    assert "the limit change may be lost" in said and "`agentls budget`" in said
    assert "kept" not in said


def _backend_that_ran(url: str, sql: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = %s AND pid <> pg_backend_pid()", (sql,)
        ).fetchone()
    assert row is not None, f"no backend ran {sql}"
    return int(row[0])


def _total_limit(url: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT lim FROM agentls.scopes WHERE scope = 'total'").fetchone()
    return row[0] if row else None


def _start_time(url: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert row is not None
    return row[0]


def test_a_late_answered_hold_that_did_not_fit_rolls_its_batch_back(team_db: str) -> None:
    """Several calls in one batch have their holds answered with the next call's look (one round
    trip for both); a hold that did not fit after all (someone wrote without the ledger's lock)
    must fail the batch before it commits, never leave a call believing it holds tokens."""
    store = PgLedgerStore(team_db)
    try:
        with store.transaction() as tx:
            tx.set_limit("total", 1000)
        with pytest.raises(HoldRefused), store.transaction() as tx:
            tx.defer_checks()
            assert [r.reserved for r in tx.states(["total"], None)] == [0]
            with psycopg.connect(team_db, autocommit=True) as other:  # no ledger lock taken
                other.execute("UPDATE agentls.scopes SET reserved = 900 WHERE scope = 'total'")
            assert tx.hold(Hold("h1", "r1", "explain", 500, ("total",))) is None  # not yet known
        with psycopg.connect(team_db) as conn:
            row = conn.execute("SELECT count(*) FROM agentls.reservations").fetchone()
        assert row == (0,)  # rolled back: no reservation of h1
    finally:
        store.close()
