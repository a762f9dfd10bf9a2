"""Idle means idle, and the WAL stays small: the audit store writes on a thread that an append
starts and that ends after a quiet moment; the WAL is checkpointed by SQLite as commits go, so no
store keeps a thread of its own and a server with nothing running has no wake-ups."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.rig.eventually import eventually

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent

GENEROUS = 30.0


def store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("agentls-audit-writer:")]


def event(run_id: str = "r1", kind: EventKind = EventKind.STARTED) -> RunEvent:
    return RunEvent(run_id=run_id, agent="explain", kind=kind, goal="g" * 200, data={})


def test_opening_stores_starts_no_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with AuditStore(tmp_path / "audit.db"), TokenBudgeter(tmp_path / "ledger.db") as budget:
        budget.set_limit(100)
        budget.snapshot()

        assert set(threading.enumerate()) - before == set()


def test_the_writer_thread_ends_a_moment_after_the_last_append(tmp_path: Path) -> None:
    with AuditStore(tmp_path / "audit.db") as store:
        store.append(event())
        assert store.writing

        eventually(lambda: not store.writing, "the writer thread to end")

        assert store_threads() == []
        assert [e.run_id for e in store.query()] == ["r1"]


def test_an_append_after_a_quiet_moment_starts_the_writer_again(tmp_path: Path) -> None:
    with AuditStore(tmp_path / "audit.db") as store:
        store.append(event("r1"))
        eventually(lambda: not store.writing, "the writer thread to end")

        store.append(event("r2"))

        assert [e.run_id for e in store.query()] == ["r1", "r2"]


def test_close_writes_what_was_submitted_and_ends_the_writer(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.db")
    for n in range(50):
        store.submit(event(f"r{n}"))

    store.close()

    assert store_threads() == []
    with AuditStore(tmp_path / "audit.db") as reopened:
        assert len(reopened.query()) == 50


def test_the_wal_stays_small_under_a_stream_of_appends(tmp_path: Path) -> None:
    """3,000 events one commit each: the WAL is checkpointed and reused, not grown to tens of MB."""
    wal = tmp_path / "audit.db-wal"
    largest = 0
    with AuditStore(tmp_path / "audit.db") as store:
        for n in range(3000):
            store.append(event(f"r{n}", EventKind.MODEL_CALL))
            if n % 100 == 0 and wal.exists():
                largest = max(largest, wal.stat().st_size)
        assert len(store.query()) == 3000

    assert largest < 8 * 1024 * 1024, f"the WAL grew to {largest / 1e6:.1f} MB"
