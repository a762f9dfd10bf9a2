"""TokenBudgeter: hard token limits per run, per agent and for the whole workspace (or team).

Before every model call the runtime reserves `prompt + max_tokens` against each scope that applies
(`run:<id>`, `agent:<name>`, `total`, and any ancestor runs of a child run). The look at the scopes
and the reservation happen in one write transaction of the ledger's store, and the store holds
a reservation only while every limited scope covers it, so the check and the reservation are
atomic across threads, processes and machines. After the call the reservation is replaced by the
provider-reported usage. Because a reservation only succeeds when `limit - committed - reserved`
covers it, and usage is at most what was reserved (the prompt estimate is an upper bound, see
DESIGN.md), committed usage never exceeds a limit however many runs share the ledger.

A call is refused only when committed spend leaves no room for its minimum (prompt plus the
smallest useful answer, `min_output_tokens`, 32 by default). When other calls' reservations are
what is in the way, `areserve` waits for them to settle (cancellable, bounded by `wait_seconds`),
woken by settles in this process, by the store's notifications from elsewhere (a team database)
and by polling with backoff; while runs wait, what is left is shared by as many of them as it can
serve at their minimum (core/budget_grants.py), so waiting runs share the budget instead of
refusing each other, and the last tokens still serve one short call.

Async code uses the `a*` methods: their transactions run on one worker thread, several to a
transaction when calls queue up (budget_queue.py, ledger_worker.py), so a busy ledger never stalls
the event loop; a reservation granted after its caller was cancelled is released.

Where the ledger lives is the store's business (core/stores/): `<workspace>/.agentls/ledger.db` by
default, or a team's PostgreSQL database (`AGENTLS_DATABASE_URL`). Reservations of holders that
are gone (a process killed with kill -9, a machine that vanished) are freed by the store's sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentls.core.budget_grants import (
    DEFAULT_MIN_OUTPUT_TOKENS,
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    GrantRequest,
    Reservation,
)
from agentls.core.budget_limits import TOTAL, LimitKey, check_limit, limit_scope, limits_op
from agentls.core.budget_queue import LedgerQueue
from agentls.core.budget_refusal import BudgetExceeded
from agentls.core.budget_reserve import Wait, reserve_in, scopes_looked_at
from agentls.core.budget_settle import (
    check_usage,
    cost_nanos,
    keep,
    keep_abandoned,
    settle_in,
)
from agentls.core.budget_snapshots import (
    BudgetScopeSnapshot,
    BudgetSnapshot,
    scope_snapshot,
    snapshot_in,
)
from agentls.core.events import Usage
from agentls.core.pricing import CallPrice
from agentls.core.stores.db_errors import NotDurable
from agentls.core.stores.identity import user_name
from agentls.core.stores.ledger import LedgerStore, LedgerTx
from agentls.core.stores.postgres import DatabaseUnavailable

# Re-exported: callers import the budget's names from here.
__all__ = [
    "DEFAULT_MIN_OUTPUT_TOKENS",
    "DEFAULT_WAIT_SECONDS",
    "MAX_WAIT_SECONDS",
    "TOTAL",
    "BudgetExceeded",
    "BudgetScopeSnapshot",
    "BudgetSnapshot",
    "Reservation",
    "TokenBudgeter",
]

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.db"


Listener = Callable[[BudgetSnapshot], None]


class TokenBudgeter:
    """The budget policy over a ledger store: limits, committed usage, reservations in flight.

    Every plain method is synchronous and short (one transaction) and safe to call from several
    threads. Async code uses the `a*` methods: their transactions run on the ledger's worker
    thread, batched with those of other calls queued meanwhile. Several processes (and, with a
    team database, machines) may share one ledger.
    """

    def __init__(
        self, ledger_path: Path | None = None, *, store: LedgerStore | None = None
    ) -> None:
        if store is None:
            from agentls.core.stores.sqlite_ledger import SqliteLedgerStore

            store = SqliteLedgerStore(ledger_path)
        self.store = store
        self.path = store.path
        # Whose calls these are (`AGENTLS_USER`, else the login name, on any host): a user's
        # limits apply to them (core/budget_limits.py).
        self.user = user_name()
        # What picks a period's window (UTC); tests step it across a window's end.
        self.clock: Callable[[], float] = time.time
        self._listeners: list[Listener] = []
        self._queue = LedgerQueue(
            # Usage the worker commits is delivered once on disk, without holding the lock then.
            functools.partial(store.transaction, flush_later=True),
            finish=self._finish_batch,
            deliver=self._deliver,
            name="agentls-ledger",
            gather_seconds=store.gather_seconds,
        )
        with store.transaction() as tx:
            tx.sweep()

    @classmethod
    def for_workspace(cls, root: Path, *, database_url: str | None = None) -> TokenBudgeter:
        """The workspace's ledger: the team database when one is named (`database_url`, else
        `AGENTLS_DATABASE_URL`), else `<root>/.agentls/ledger.db`."""
        from agentls.core.stores.select import ledger_store

        return cls(store=ledger_store(root, database_url))

    @property
    def shared(self) -> bool:
        """Whether other machines share this ledger (a team database)."""
        return self.store.shared

    def _tx(self, *, write: bool = True) -> contextlib.AbstractContextManager[Any]:
        return self.store.transaction(write=write)

    @property
    def batches(self) -> int:
        """Transactions the worker thread has committed for async callers (diagnostics)."""
        return self._queue.batches

    def close(self) -> None:
        """Finish the transactions still queued by async callers, then close the ledger."""
        self._queue.stop()
        self.store.close()

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
        if self._listeners:
            self._deliver(self.snapshot())

    def _deliver(self, snap: BudgetSnapshot) -> None:
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:
                log.exception("budget listener %r failed", fn)

    def _finish_batch(self, tx: LedgerTx) -> BudgetSnapshot | None:
        """The snapshot listeners see after a batch, read in the batch's own transaction."""
        return snapshot_in(tx, self.clock()) if self._listeners else None

    # Reserving.

    def reserve(
        self,
        *,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None = None,
        min_output_tokens: int = DEFAULT_MIN_OUTPUT_TOKENS,
        ancestor_run_ids: Sequence[str] = (),
        price: CallPrice | None = None,
        model: str | None = None,
    ) -> Reservation:
        """Hold `prompt_tokens + max_tokens` in every scope that applies, or raise BudgetExceeded.

        Scopes: `run:<run_id>` (limited by `run_limit`, remembered for the run's later calls),
        `agent:<agent>`, `total`, and `run:<id>` of each ancestor run (a child run's calls count
        against its parents' run budgets). When the tightest scope cannot cover the full request
        but can cover the prompt plus at least `min_output_tokens`, `max_tokens` shrinks to fit;
        while other calls wait on a scope, the grant is at most a fair share of what it has left
        (see `grant`). This never waits: `areserve` waits when only calls in flight are in the way.

        The limits of core/budget_limits.py apply too: this user's, each period's window, and
        dollar limits, which hold the call's cost bound at `price` (the model's, core/pricing.py;
        a call of a `model` without one is refused under a dollar limit).
        """
        request = GrantRequest.of(
            run_id, agent, prompt_tokens, max_tokens, run_limit, min_output_tokens,
            ancestor_run_ids, self.user, price, model, self.clock(),
        )  # fmt: skip
        with self._tx() as tx:
            outcome = reserve_in(tx, request, None, queued=False)
        if isinstance(outcome, BudgetExceeded):
            raise self._refusal(outcome)
        self._held(outcome)
        self._notify()
        return outcome

    async def areserve(
        self,
        *,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None = None,
        min_output_tokens: int = DEFAULT_MIN_OUTPUT_TOKENS,
        ancestor_run_ids: Sequence[str] = (),
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        price: CallPrice | None = None,
        model: str | None = None,
    ) -> Reservation:
        """`reserve` off the event loop, waiting (up to `wait_seconds`) while calls in flight hold
        what this call needs; refused at once when committed spend alone leaves no room.

        Cancelling the caller cancels the wait; a reservation that the worker thread granted after
        the cancel is released.
        """
        request = GrantRequest.of(
            run_id, agent, prompt_tokens, max_tokens, run_limit, min_output_tokens,
            ancestor_run_ids, self.user, price, model, self.clock(),
        )  # fmt: skip
        looks = functools.partial(scopes_looked_at, request)
        waiter = f"w-{uuid.uuid4().hex}"
        waiting = Wait(asyncio.get_running_loop(), wait_seconds, self.store.poll_max_seconds)
        try:
            with contextlib.ExitStack() as watching:
                while True:
                    # Registered before the attempt, so a settle in between is never missed.
                    with self._queue.waiting() as wake:
                        outcome = await self._queue.submit(
                            functools.partial(
                                reserve_in, request=request, waiter_id=waiter,
                                queued=waiting.queued,
                            ),
                            after=self._held,
                            abandoned=functools.partial(self._abandon_reserve, waiter),
                            looks=looks,
                        )  # fmt: skip
                        if isinstance(outcome, Reservation):
                            waiting.queued = False  # the grant took it out of the queue
                            return outcome
                        if outcome.waitable and not waiting.queued:
                            waiting.queued = True
                            self.store.held(waiter, True)  # a place in the queue is a lease too
                            # Settles elsewhere wake us too (a team database's notifications).
                            watching.enter_context(self.store.watch(self._queue.wake))
                        await waiting.pause(outcome, wake)
        except BudgetExceeded as refused:
            raise self._refusal(refused) from None
        finally:
            self.store.held(waiter, False)
            if waiting.queued:
                await self._queue.submit(functools.partial(_leave_queue, waiter), frees=True)

    def _refusal(self, refused: BudgetExceeded) -> BudgetExceeded:
        """A refusal as the user should read it: of the team's budget on a team database."""
        return refused.on_team() if self.store.shared else refused

    def _held(self, outcome: Reservation | BudgetExceeded) -> None:
        """On the worker, once a grant committed: its lease is renewed while the call runs."""
        if isinstance(outcome, Reservation):
            for hold in outcome.holds:
                self.store.held(hold, True)

    def _abandon_reserve(
        self, waiter_id: str, outcome: Reservation | BudgetExceeded | None, _: object
    ) -> None:
        """Undo what a reserve did after its caller gave up: the call will never be made."""
        if isinstance(outcome, Reservation):
            for hold in outcome.holds:
                self.store.held(hold, False)
            self._queue.fire(
                functools.partial(settle_in, reservation=outcome, usage=None), frees=True
            )
        elif isinstance(outcome, BudgetExceeded) and outcome.waitable:
            self._queue.fire(functools.partial(_leave_queue, waiter_id), frees=True)

    # Settling.

    def commit(self, reservation: Reservation, usage: Usage, cost_usd: float | None = None) -> None:
        """Replace the reservation with what the call really used, in every scope it held (and
        under a dollar limit its cost: `cost_usd`, else its usage at the reserved price)."""
        self._check_unsettled(reservation)
        check_usage(reservation, usage)
        nanos = cost_nanos(reservation, usage, cost_usd)
        try:
            with self._tx() as tx:
                settle_in(tx, reservation, usage, nanos)
        except DatabaseUnavailable as exc:
            self._keep(reservation, usage, nanos, exc)
        self._settled(reservation)
        self._notify()

    async def acommit(
        self, reservation: Reservation, usage: Usage, cost_usd: float | None = None
    ) -> None:
        """`commit` on the worker thread; a cancel of the caller does not undo or lose it.

        If the team database is away, the usage is kept in the workspace's journal and committed
        when it is back."""
        self._check_unsettled(reservation)
        check_usage(reservation, usage)
        nanos = cost_nanos(reservation, usage, cost_usd)
        keep = functools.partial(self._keep_abandoned, reservation, usage, nanos)
        try:
            await self._queue.submit(
                functools.partial(settle_in, reservation=reservation, usage=usage, nanos=nanos),
                after=functools.partial(self._settled_on_worker, reservation),
                abandoned=keep,
                frees=True,
            )
        except DatabaseUnavailable as exc:
            await asyncio.to_thread(self._keep, reservation, usage, nanos, exc)
            self._settled(reservation)

    def _keep(
        self, reservation: Reservation, usage: Usage, nanos: int, error: DatabaseUnavailable
    ) -> None:
        keep(self.store, reservation, usage, nanos, error)

    def _keep_abandoned(
        self,
        reservation: Reservation,
        usage: Usage,
        nanos: int,
        _: object,
        error: BaseException | None,
    ) -> None:
        if keep_abandoned(self.store, reservation, usage, nanos, error):
            self._settled(reservation)

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call was not made or failed before reporting usage.

        Releasing a settled reservation does nothing: `finally: release(r)` after a commit is safe.
        """
        if reservation.settled:
            return
        with self._tx() as tx:
            settle_in(tx, reservation, None)
        self._settled(reservation)
        self._notify()

    async def arelease(self, reservation: Reservation) -> None:
        """`release` on the worker thread; a cancel of the caller does not stop it."""
        if reservation.settled:
            return
        await self._queue.submit(
            functools.partial(settle_in, reservation=reservation, usage=None),
            after=functools.partial(self._settled_on_worker, reservation),
            frees=True,
        )

    def _settled(self, reservation: Reservation) -> None:
        self._settled_on_worker(reservation, None)
        self._queue.wake()

    def _settled_on_worker(self, reservation: Reservation, _: object) -> None:
        reservation.settled = True
        for hold in reservation.holds:
            self.store.held(hold, False)

    @staticmethod
    def _check_unsettled(reservation: Reservation) -> None:
        if reservation.settled:
            raise ValueError(f"reservation {reservation.id} was already committed or released")

    # Limits.

    def set_limit(self, limit: int | None, agent: str | None = None) -> None:
        """Set the workspace total's limit (agent=None) or one agent's; None means unlimited."""
        check_limit(limit)
        self._write(lambda tx: tx.set_limit(limit_scope(agent), limit))

    async def aset_limit(self, limit: int | None, agent: str | None = None) -> None:
        """`set_limit` on the worker thread."""
        await self.aset_limits([(limit, agent)])

    def set_limits(
        self,
        limits: Sequence[tuple[int | None, str | None]],
        lower: Sequence[tuple[int, str | None]] = (),
    ) -> None:
        """`aset_limits` from synchronous code, in one transaction."""
        if limits or lower:
            self._write(limits_op(limits, lower))

    async def aset_limits(
        self,
        limits: Sequence[tuple[int | None, str | None]],
        lower: Sequence[tuple[int, str | None]] = (),
        *,
        keys: Sequence[tuple[LimitKey, int | None]] = (),
    ) -> None:
        """Several `set_limit`s (limit, agent) in one transaction on the worker thread, then the
        `lower` ones, each written only where it is below the limit in force (never raising it),
        then `set_limit_of`s (`keys`). Calls queue in order: of two changes the later one wins.
        """
        run = limits_op(limits, lower, keys=keys, now=self.clock())
        with _said_lost("the limit change"):
            await self._queue.submit(run, frees=True)

    def set_limit_of(self, key: LimitKey, amount: int | None) -> None:
        """Set (None: remove) a limit of core/budget_limits.py: a user's, a period's, or one in
        dollars (`amount` in nano-dollars). A period's current window takes it at once."""
        self._write(limits_op([], keys=[(key, amount)], now=self.clock()))

    def _write(self, run: Callable[[LedgerTx], object]) -> None:
        """One write transaction from synchronous code that may make room: waiting calls look
        again and listeners see the result."""
        with self._tx() as tx:
            run(tx)
        self._queue.wake()
        self._notify()

    def set_run_limit(self, run_id: str, limit: int | None) -> None:
        """Set a run's limit ahead of its first call (e.g. a parent run that only delegates)."""
        check_limit(limit)
        with self._tx() as tx:
            tx.set_run_limit(f"run:{run_id}", limit)
        self._notify()

    def reset(self, agent: str | None = None) -> None:
        """Zero committed usage: the total and every agent (agent=None), or one agent.

        Limits stay; reservations of calls in flight stay and are committed as usual.
        """
        self._write(lambda tx: tx.reset(agent))

    async def areset(self, agent: str | None = None) -> None:
        """`reset` on the worker thread."""
        with _said_lost("the reset"):
            await self._queue.submit(lambda tx: tx.reset(agent), frees=True)

    # Reading.

    def snapshot(self) -> BudgetSnapshot:
        """Used, limit, remaining and reserved tokens for the total and every known agent."""
        try:
            with self._tx(write=False) as tx:
                return snapshot_in(tx, self.clock())
        except ValidationError:  # a number agentls did not write: named, not a traceback
            raise self.store.unusable() from None

    def run_usage(self, run_id: str) -> Usage:
        """Committed usage of one run (its own calls and those of child runs that named it)."""
        return self.run_snapshot(run_id).usage

    def run_snapshot(self, run_id: str) -> BudgetScopeSnapshot:
        with self._tx(write=False) as tx:
            return scope_snapshot(tx.scope_totals(f"run:{run_id}"))

    def waiting_calls(self) -> int:
        """Calls waiting in the ledger for others' reservations to settle (every process's)."""
        with self._tx(write=False) as tx:
            return tx.waiting_calls()

    async def asnapshot(self) -> BudgetSnapshot:
        return await asyncio.to_thread(self.snapshot)

    async def arun_snapshot(self, run_id: str) -> BudgetScopeSnapshot:
        return await asyncio.to_thread(self.run_snapshot, run_id)

    async def asettled(self) -> None:
        """Wait until every ledger operation started from async code has finished (including
        the undoing of reservations granted to callers that had gone)."""
        while self._queue.busy:
            await asyncio.sleep(0.001)

    async def _submit(self, run: Callable[[Any], Any], **kw: Any) -> Any:
        """One operation on the worker thread (tests reach the worker directly through this)."""
        return await self._queue.submit(run, **kw)


def _leave_queue(waiter_id: str, tx: LedgerTx) -> None:
    tx.leave_queue(waiter_id)


@contextlib.contextmanager
def _said_lost(what: str) -> Iterator[None]:
    """A change nobody keeps (a limit, a reset) whose commit the server may have lost is said
    to be maybe lost, not kept as usage is (stores/db_errors.py NotDurable)."""
    try:
        yield
    except NotDurable as exc:
        raise exc.lost(what) from None
