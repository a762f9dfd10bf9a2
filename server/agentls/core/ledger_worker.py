"""LedgerWorker: one thread that runs the ledger's operations for async callers, many to a transaction.

Every model call reserves before it and commits after it. Run one by one, each would cost a thread
hop and a transaction of its own; here the operations queued while the thread was busy (32 runs in
flight queue many) run back to back inside one write transaction of the ledger's store (SQLite's
BEGIN IMMEDIATE, or PostgreSQL under the ledger's lock), in the order they were queued, so each
still sees the effects of the ones before it: a reservation's check and its write stay atomic,
across processes too. Results go back to each caller's event
loop in one callback per loop and batch.

An operation that fails rolls its batch back; the batch is then rerun one operation per
transaction, so only the failing one fails. Cancelling a caller never stops its operation (it
may already be in the database): its result goes to the operation's `abandoned` handler instead, which
undoes what must not stay (a reservation nobody will use).

A team database's commit waits for the server's disk while still holding the ledger's write lock.
So the worker asks the store to commit without waiting (`flush_later`) and hands the operations
that wrote usage or limits to a second thread, which waits for the disk once for every commit
handed over meanwhile (stores/pg_threads.py WalFlusher) and only then delivers them: the lock is
free and the next batch runs while the disk syncs, and no caller hears of a commit that a crash
of the server could still lose. Reservations, which are leases, are delivered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Operations one transaction takes at most, so a long queue still commits now and then.
_BATCH_MAX = 64
# A store whose transactions cost much each (a team database: statements, a flush, results
# handed over) may let the worker wait for a batch to fill (`gather_seconds`): at most that long,
# in steps of this, and only while calls are in flight (the batch before carried more than one
# operation) and fewer than this many operations are queued.
_GATHER_STEP_S = 0.002
_GATHER_ENOUGH = 16

# A write transaction of the store; what it yields is what operations are given.
Transaction = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass(eq=False)
class LedgerOp:
    """One ledger operation of an async caller.

    `run(conn)` runs inside the batch's transaction and must not raise for expected outcomes
    (return them); `after(result)` runs on the worker once the transaction committed;
    `abandoned(result, error)` runs on the caller's loop when the caller stopped waiting.
    """

    run: Callable[[Any], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    after: Callable[[Any], None] | None = None
    abandoned: Callable[[Any, BaseException | None], None] | None = None
    # Whether it can make room in a budget (waiting calls should look again).
    frees: bool = False
    # The scopes it will look at, asked only of a store that reads a batch's in one statement
    # (`prefetch`), on the worker.
    looks: Callable[[], Sequence[str]] | None = None
    result: Any = field(default=None, repr=False)
    error: BaseException | None = field(default=None, repr=False)
    # Whether it wrote what must survive a crash of the database server (usage, limits).
    durable: bool = field(default=False, repr=False)


class LedgerWorker:
    """The thread and its queue. `finish(conn)` runs last in every batch's transaction; its
    value goes to `delivered(batch, value)` on each loop that had operations in the batch."""

    def __init__(
        self,
        transaction: Transaction,
        *,
        finish: Callable[[Any], Any],
        delivered: Callable[[list[LedgerOp], Any], None],
        batch_done: Callable[[list[LedgerOp]], None],
        name: str,
        gather_seconds: float = 0.0,
    ) -> None:
        self._transaction = transaction
        self._gather_seconds = gather_seconds
        self._last_batch = 0  # operations the last batch carried
        self._finish = finish
        self._delivered = delivered
        self._batch_done = batch_done
        self._name = name
        self._queue: queue.SimpleQueue[LedgerOp | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        # Commits whose durable operations wait for the disk, outside the write lock.
        self._flush_queue: queue.SimpleQueue[Flush | None] = queue.SimpleQueue()
        self._flush_thread: threading.Thread | None = None
        self.batches = 0  # transactions run (tests and diagnostics)

    def submit(self, op: LedgerOp) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's threads are not ours
                self._flush_queue, self._flush_thread = queue.SimpleQueue(), None
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._pid = os.getpid()
                self._thread.start()
        self._queue.put(op)

    def stop(self) -> None:
        """Run what is queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            thread.join()
        flusher, self._flush_thread = self._flush_thread, None
        if flusher is not None and self._pid == os.getpid() and flusher.is_alive():
            self._flush_queue.put(None)
            flusher.join()

    def _serve(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            if self._gather_seconds > 0 and self._last_batch > 1:
                self._gather()
            batch = [first]
            try:
                stop = self._run_batch(batch)
            except BaseException:  # never lose the thread: its callers would wait forever
                log.exception("ledger batch failed")

    def _gather(self) -> None:
        """Wait a little for more operations to share the next transaction (see _GATHER_STEP_S).
        The wait holds nothing: other machines' transactions run meanwhile."""
        deadline = time.monotonic() + self._gather_seconds
        while self._queue.qsize() + 1 < _GATHER_ENOUGH:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(_GATHER_STEP_S, left))

    def _drain(self, batch: list[LedgerOp]) -> bool:
        """Add what is queued to `batch` (up to _BATCH_MAX); True when a stop was queued."""
        while len(batch) < _BATCH_MAX:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                return False
            if op is None:
                return True
            batch.append(op)
        return False

    def _run_batch(self, batch: list[LedgerOp]) -> bool:
        """Run the batch (and what is queued once its transaction holds the ledger's write lock,
        so the longer other processes hold it, the more one transaction carries); True when a
        stop was queued."""
        value: Any = None
        stop = False
        began = False
        flushes: list[Flush] = []
        try:
            with self._transaction() as conn:
                began = True
                stop = self._drain(batch)
                if len(batch) > 1 and (defer := getattr(conn, "defer_checks", None)):
                    defer()  # a store may answer some writes late; a failure reruns them alone
                if len(batch) > 1 and (prefetch := getattr(conn, "prefetch", None)):
                    looks = [s for op in batch if op.looks is not None for s in op.looks()]
                    if looks:
                        prefetch(list(dict.fromkeys(looks)))  # one read for every call's look
                for op in batch:
                    _run(op, conn)
                value = self._finish(conn)
            flushes.append(_flush_of(conn, batch))
        except BaseException as exc:
            if not began:
                # No transaction (the database is away): not any operation's fault, so every
                # one queued fails with it now rather than each waiting for its own try.
                stop = self._drain(batch)
                for op in batch:
                    op.result, op.error = None, exc
            elif len(batch) == 1:
                batch[0].result, batch[0].error = None, exc
            else:
                value = self._run_alone(batch, flushes)
        else:
            self.batches += 1
        self._last_batch = len(batch)
        later = {id(op) for f in flushes for op in f.ops}
        self._complete([op for op in batch if id(op) not in later], value, batch)
        for f in flushes:
            if f.ops:
                self._flusher().put(f)
        return stop

    def _run_alone(self, batch: list[LedgerOp], flushes: list[Flush]) -> Any:
        value: Any = None
        for op in batch:
            try:
                with self._transaction() as conn:
                    _run(op, conn)
                    value = self._finish(conn)
                flushes.append(_flush_of(conn, [op]))
            except BaseException as exc:
                op.result, op.error = None, exc
            else:
                self.batches += 1
        return value

    def _complete(self, ops: list[LedgerOp], value: Any, batch: list[LedgerOp] | None) -> None:
        """Hand results back: `after` here, then each loop's share of `ops` on that loop."""
        for op in ops:
            if op.error is None and op.after is not None:
                op.after(op.result)
        if batch is not None:
            self._batch_done(batch)  # the commit is visible: others may look again now
        by_loop: dict[asyncio.AbstractEventLoop, list[LedgerOp]] = {}
        for op in ops:
            by_loop.setdefault(op.loop, []).append(op)
        for loop, mine in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a loop that has closed
                loop.call_soon_threadsafe(self._delivered, mine, value)

    def _flusher(self) -> queue.SimpleQueue[Flush | None]:
        """The queue of the thread that waits for durable commits (started on first use)."""
        if self._flush_thread is None or not self._flush_thread.is_alive():
            self._flush_thread = threading.Thread(
                target=self._serve_flushes, name=self._name + "-flush", daemon=True
            )
            self._flush_thread.start()
        return self._flush_queue

    def _serve_flushes(self) -> None:
        """Wait for the disk once for every commit handed over meanwhile, then deliver their
        operations; a failed wait fails them (their callers keep and retry what they wrote)."""
        while True:
            first = self._flush_queue.get()
            if first is None:
                return
            pending, stop = [first], False
            while True:
                try:
                    item = self._flush_queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                pending.append(item)
            # The newest commit of each server covers every one before it there; one made on a
            # server since restarted is not covered by a flush of the new one (it may be lost).
            newest: dict[Any, Flush] = {}
            for f in pending:
                newest[getattr(f.wait, "server", None)] = f
            failed: dict[Any, BaseException] = {}
            for server, f in newest.items():
                try:
                    f.wait()
                except BaseException as exc:
                    failed[server] = exc
            ops = []
            for f in pending:
                error = failed.get(getattr(f.wait, "server", None))
                for op in f.ops:
                    if error is not None:
                        op.result, op.error = None, error
                    ops.append(op)
            try:
                self._complete(ops, None, None)
            except BaseException:
                log.exception("delivering flushed ledger results failed")
            if stop:
                return


@dataclass
class Flush:
    """Operations whose commit did not wait for the disk, and the wait that makes it durable
    (with a `server` attribute where the store can tell which server took the commit)."""

    ops: list[LedgerOp]
    wait: Callable[[], None]


def _run(op: LedgerOp, conn: Any) -> None:
    """Run `op` in the transaction, noting whether it wrote what must wait for the disk."""
    before = getattr(conn, "durable_writes", 0)
    op.result, op.error = op.run(conn), None
    op.durable = getattr(conn, "durable_writes", 0) > before


def _flush_of(conn: Any, ops: list[LedgerOp]) -> Flush:
    """The committed `ops` that wait for a flush the store deferred (none if it did not)."""
    wait = getattr(conn, "flush", None)
    if wait is None:
        return Flush([], _no_wait)
    # Read now, on the thread that owns the connection (the flusher's thread must not touch it).
    getattr(wait, "server", None)
    return Flush([op for op in ops if op.durable and op.error is None], wait)


def _no_wait() -> None:
    return None
