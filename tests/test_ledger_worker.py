"""The ledger's worker thread: operations queued while it is busy share one transaction, in order;
one that fails fails alone; a caller that stops waiting hands its result to `abandoned`; on a team
database, a batch may fill for a moment while calls are in flight, never for a lone call."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentls.core.budget import TokenBudgeter
from agentls.core.events import Usage
from agentls.core.ledger_worker import LedgerOp, LedgerWorker


async def test_reservations_queued_while_the_ledger_is_busy_share_one_transaction(
    tmp_path: Path,
) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as ledger:
        ledger.set_limit(10_000)
        assert ledger.path is not None
        holder = sqlite3.connect(ledger.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writes: the worker waits for it
        calls = [
            asyncio.create_task(
                ledger.areserve(run_id=f"r{i}", agent="a", prompt_tokens=100, max_tokens=100)
            )
            for i in range(10)
        ]
        for _ in range(20):
            await asyncio.sleep(0)
        holder.execute("ROLLBACK")
        holder.close()
        grants = await asyncio.gather(*calls)

        # The first batch may have held only the first call; all the others came in the next.
        assert ledger.batches <= 2
        assert [g.tokens for g in grants] == [200] * 10
        assert ledger.snapshot().reserved == 2000
        await asyncio.gather(
            *(ledger.acommit(g, Usage(input_tokens=100, output_tokens=50)) for g in grants)
        )
        assert ledger.snapshot().used == 1500 and ledger.snapshot().reserved == 0


async def test_an_operation_that_fails_fails_alone(tmp_path: Path) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as ledger:

        def ok(n: int) -> Callable[[sqlite3.Connection], int]:
            def run(conn: sqlite3.Connection) -> int:
                conn.execute("INSERT INTO scopes (scope, lim) VALUES (?, ?)", (f"t{n}", n))
                return n

            return run

        def boom(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO scopes (scope, lim) VALUES ('t9', 9)")
            raise RuntimeError("boom")

        results = await asyncio.gather(
            ledger._submit(ok(1)), ledger._submit(boom), ledger._submit(ok(2)),
            return_exceptions=True,
        )  # fmt: skip

        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], RuntimeError)
        with ledger._tx(write=False) as conn:
            scopes = {r[0] for r in conn.execute("SELECT scope FROM scopes WHERE scope LIKE 't%'")}
        assert scopes == {"t1", "t2"}  # what the failing one wrote was rolled back


async def test_a_commit_whose_caller_is_cancelled_still_lands(tmp_path: Path) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as ledger:
        r = await ledger.areserve(run_id="r", agent="a", prompt_tokens=10, max_tokens=10)
        committing = asyncio.create_task(ledger.acommit(r, Usage(input_tokens=10, output_tokens=5)))
        await asyncio.sleep(0)
        committing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await committing
        await ledger.asettled()
        snap = ledger.snapshot()
        assert (snap.used, snap.reserved) == (15, 0) and r.settled


async def test_a_flush_of_a_restarted_server_never_vouches_for_a_commit_made_before_it() -> None:
    """Durable results wait for a flush; commits handed over together share one flush per server
    that took them. One taken by a server since restarted fails (its caller keeps and retries
    what it wrote) even though a flush of the new server succeeds."""
    import threading

    flushing = threading.Event()  # the first flush has begun...
    gate = threading.Event()  # ...and waits for this, so the next two are handed over together
    committed = [threading.Event() for _ in range(3)]
    flushed: list[str] = []

    class Wait:
        def __init__(self, server: str) -> None:
            self.server = server

        def __call__(self) -> None:
            if not flushed:
                flushing.set()
                gate.wait(10)
            flushed.append(self.server)
            if self.server == "before-restart" and len(flushed) > 1:
                raise RuntimeError("the server restarted after this commit")

    servers = iter(["before-restart", "before-restart", "after-restart"])

    class Tx:  # a store's transaction whose commit waits for a flush, as a team database's does
        durable_writes = 0
        flush: Wait | None = None

    @contextlib.contextmanager
    def transaction() -> Iterator[Tx]:
        tx = Tx()
        yield tx
        tx.flush = Wait(next(servers))
        committed[len([e for e in committed if e.is_set()])].set()

    def write(tx: Tx) -> str:
        tx.durable_writes += 1
        return "written"

    def delivered(ops: list[LedgerOp], value: object) -> None:
        for op in ops:
            if op.error is not None:
                op.future.set_exception(op.error)
            else:
                op.future.set_result(op.result)

    loop = asyncio.get_running_loop()
    worker = LedgerWorker(
        transaction,
        finish=lambda tx: None,
        delivered=delivered,
        batch_done=lambda batch: None,
        name="test-ledger",
    )
    ops = [LedgerOp(write, loop, loop.create_future()) for _ in range(3)]
    worker.submit(ops[0])
    assert await asyncio.to_thread(flushing.wait, 10)
    for n in (1, 2):  # one transaction each: the second before the restart, the third after
        worker.submit(ops[n])
        assert await asyncio.to_thread(committed[n].wait, 10)
    gate.set()
    results = await asyncio.gather(*(op.future for op in ops), return_exceptions=True)
    worker.stop()
    assert results[0] == "written" and results[2] == "written"
    assert isinstance(results[1], RuntimeError), "committed before the restart: not vouched for"
    assert flushed == ["before-restart", "before-restart", "after-restart"]


class _Recording:
    """A store's transactions that record how many operations each carried; the first one
    waits at its start until `opened` is set (as for another machine's lock)."""

    def __init__(self) -> None:
        import threading

        self.opened = threading.Event()
        self.sizes: list[int] = []
        self._count = 0

    def transaction(self) -> contextlib.AbstractContextManager[list[int]]:
        @contextlib.contextmanager
        def tx() -> Iterator[list[int]]:
            if not self.sizes and not self.opened.wait(10):
                raise AssertionError("never opened")
            ran: list[int] = []
            yield ran
            self.sizes.append(len(ran))

        return tx()


def _worker(store: _Recording, gather_seconds: float) -> LedgerWorker:
    def delivered(ops: list[LedgerOp], value: object) -> None:
        for op in ops:
            op.future.set_result(op.result)

    return LedgerWorker(
        store.transaction,
        finish=lambda tx: None,
        delivered=delivered,
        batch_done=lambda batch: None,
        name="test-ledger",
        gather_seconds=gather_seconds,
    )


def _op(loop: asyncio.AbstractEventLoop) -> LedgerOp:
    return LedgerOp(lambda ran: ran.append(1), loop, loop.create_future())


async def test_while_calls_are_in_flight_a_team_ledger_lets_a_batch_fill_before_it_runs() -> None:
    """A team database's transaction costs much each (statements, a flush, results handed over):
    with calls in flight, operations that arrive over a few milliseconds share one."""
    loop = asyncio.get_running_loop()
    store = _Recording()
    worker = _worker(store, gather_seconds=10.0)
    first = [_op(loop) for _ in range(2)]
    for op in first:  # both queued while the first transaction waits: calls are in flight
        worker.submit(op)
    store.opened.set()
    await asyncio.gather(*(op.future for op in first))

    later = [_op(loop) for _ in range(16)]
    worker.submit(later[0])
    await asyncio.sleep(0.05)  # the rest come later, one by one
    for op in later[1:]:
        worker.submit(op)
        await asyncio.sleep(0)
    await asyncio.gather(*(op.future for op in later))
    worker.stop()

    assert store.sizes == [2, 16]


async def test_a_lone_call_is_never_kept_waiting_for_others() -> None:
    loop = asyncio.get_running_loop()
    store = _Recording()
    store.opened.set()
    worker = _worker(store, gather_seconds=10.0)
    for _ in range(2):  # one call at a time: each batch carries one operation
        op = _op(loop)
        worker.submit(op)
        await asyncio.wait_for(op.future, 5.0)  # not the 10 s a batch may wait to fill
    worker.stop()
    assert store.sizes == [1, 1]
