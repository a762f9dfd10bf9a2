"""The ledger's operations from async code: queued for its worker thread, results back on the loop.

`LedgerQueue.submit` hands one operation (a function of a ledger transaction) to the worker
(core/ledger_worker.py), which runs the operations queued meanwhile in one transaction; the
caller's loop gets each result in one callback per batch. A caller that stops waiting (cancelled)
leaves its result to the operation's `abandoned` handler, which undoes what must not stay.

It also wakes this process's waiting calls (`wakers`) whenever an operation may have made room,
and counts operations not yet delivered, so `asettled` can wait for them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from agentls.core.ledger_worker import LedgerOp, LedgerWorker, Transaction

log = logging.getLogger("agentls.core.budget")

_T = TypeVar("_T")


class LedgerQueue:
    """The worker thread of one ledger, its undelivered operations and its waiting calls."""

    def __init__(
        self,
        transaction: Transaction,
        *,
        finish: Callable[[Any], Any],
        deliver: Callable[[Any], None],
        name: str,
        gather_seconds: float = 0.0,
    ) -> None:
        self._deliver = deliver
        # Events of this process's calls waiting in `areserve`, set when room may have been made.
        self._wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        # Operations queued by async callers and not yet delivered back to their loop.
        self._outstanding: set[LedgerOp] = set()
        self._worker = LedgerWorker(
            transaction,
            finish=finish,
            delivered=self._delivered,
            batch_done=self._batch_done,
            name=name,
            gather_seconds=gather_seconds,
        )

    @property
    def batches(self) -> int:
        return self._worker.batches

    @property
    def busy(self) -> bool:
        return bool(self._outstanding)

    def stop(self) -> None:
        self._worker.stop()

    async def submit(
        self,
        run: Callable[[Any], _T],
        *,
        after: Callable[[Any], None] | None = None,
        abandoned: Callable[[Any, BaseException | None], None] | None = None,
        frees: bool = False,
        looks: Callable[[], Sequence[str]] | None = None,
    ) -> _T:
        """Queue one operation for the worker thread and wait for its result.

        The operation runs whatever happens to the caller; a caller cancelled before the result
        came back leaves the result to `abandoned`. `looks` says which scopes it will look at.
        """
        loop = asyncio.get_running_loop()
        op = LedgerOp(run, loop, loop.create_future(), after, abandoned, frees, looks)
        self._outstanding.add(op)
        self._worker.submit(op)
        result: _T = await op.future
        return result

    def fire(self, run: Callable[[Any], object], *, frees: bool) -> None:
        """Queue an operation nobody waits for (on the running loop, so `asettled` sees it)."""
        loop = asyncio.get_running_loop()
        op = LedgerOp(run, loop, loop.create_future(), frees=frees)
        op.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._outstanding.add(op)
        self._worker.submit(op)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[asyncio.Event]:
        """An event set when room may have been made (registered for as long as this is open)."""
        key = (asyncio.get_running_loop(), asyncio.Event())
        self._wakers.add(key)
        try:
            yield key[1]
        finally:
            self._wakers.discard(key)

    def wake(self) -> None:
        """Wake this process's waiting calls (from any thread): room may have been made."""
        for loop, event in list(self._wakers):
            with contextlib.suppress(RuntimeError):  # a loop that has closed
                loop.call_soon_threadsafe(event.set)

    def _batch_done(self, batch: list[LedgerOp]) -> None:
        if any(op.frees for op in batch):
            self.wake()

    def _delivered(self, ops: list[LedgerOp], value: Any) -> None:
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
        if value is not None:
            self._deliver(value)
