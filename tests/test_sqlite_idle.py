"""Idle means idle: a SQLite store checkpoints its WAL on a thread that a write starts and that ends
after a quiet interval, so a server with nothing running has no such thread and no wake-ups."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent

GENEROUS = 30.0


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("agentls-checkpoint:")]


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + GENEROUS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def event() -> RunEvent:
    return RunEvent(run_id="r1", agent="explain", kind=EventKind.STARTED, goal="g", data={})


def test_opening_stores_starts_no_thread(tmp_path: Path) -> None:
    with AuditStore(tmp_path / "audit.db"), TokenBudgeter(tmp_path / "ledger.db") as budget:
        budget.snapshot()

        assert checkpoint_threads() == []


def test_a_write_is_checkpointed_and_then_the_thread_ends(tmp_path: Path) -> None:
    with AuditStore(tmp_path / "audit.db") as store:
        store.append(event())
        db = store._db
        assert db.checkpointing

        wait_for(lambda: db.checkpoints >= 1, "a checkpoint after the write")
        wait_for(lambda: not db.checkpointing, "the checkpoint thread to end")

        assert checkpoint_threads() == []
        assert [e.run_id for e in store.query()] == ["r1"]


def test_a_write_after_a_quiet_period_starts_checkpointing_again(tmp_path: Path) -> None:
    with TokenBudgeter(tmp_path / "ledger.db") as budget:
        db = budget._db
        budget.set_limit(100)
        wait_for(lambda: not db.checkpointing, "the checkpoint thread to end")
        done = db.checkpoints

        budget.set_limit(200)

        assert db.checkpointing
        wait_for(lambda: db.checkpoints > done, "a checkpoint after the second write")


def test_close_ends_the_checkpoint_thread(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.db")
    store.append(event())

    store.close()

    assert checkpoint_threads() == []
