"""One model call's reservation inside a ledger transaction, and the pacing of a call that waits.

`reserve_in` looks at the call's scopes, asks `grant` (budget_grants.py) what the budget allows,
and asks the store to hold it; the store holds it only if every limited scope still covers it, so
if another machine took the room in between, it looks again. A refusal that only calls in flight
cause puts the call in the ledger's wait queue, which the fair shares of `grant` count. `Wait`
paces `TokenBudgeter.areserve` between two looks: woken by settles, else polling with backoff,
and bounded by the caller's `wait_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from agentls.core.budget_grants import (
    TOTAL,
    BudgetExceeded,
    GrantRequest,
    Reservation,
    ScopeState,
    grant,
)
from agentls.core.stores.ledger import Hold, LedgerTx

_POLL_FIRST_S = 0.005
# Looks at the ledger a reservation may take when another machine took the room in between.
_HOLD_TRIES = 3


def reserve_in(
    tx: LedgerTx, request: GrantRequest, waiter_id: str | None, queued: bool
) -> Reservation | BudgetExceeded:
    """The check and the reservation, inside the caller's transaction.

    A refusal is returned, not raised, so that the writes it made (the run limit, the sweep
    of holders that are gone, the place in the queue) commit with the rest of the batch.
    """
    outcome: int | BudgetExceeded = 0
    for _ in range(_HOLD_TRIES):
        outcome = _decide(tx, request, waiter_id if queued else None)
        if isinstance(outcome, BudgetExceeded):
            break
        hold = Hold(
            uuid.uuid4().hex,
            request.run_id,
            request.agent,
            request.prompt_tokens + outcome,
            request.scopes,
        )
        if tx.hold(hold) is None:
            if queued and waiter_id is not None:
                tx.leave_queue(waiter_id)
            return Reservation(
                id=hold.id,
                run_id=request.run_id,
                agent=request.agent,
                tokens=hold.tokens,
                max_tokens=outcome,
                prompt_tokens=request.prompt_tokens,
                scopes=request.scopes,
            )
    if not isinstance(outcome, BudgetExceeded):  # others kept taking the room: wait for them
        outcome = _contended(tx, request)
    if outcome.waitable and waiter_id is not None and not queued:
        tx.join_queue(waiter_id, request.scopes)
    return outcome


def _decide(tx: LedgerTx, request: GrantRequest, waiter_id: str | None) -> int | BudgetExceeded:
    """The max_tokens the scopes allow now, or why not; holders that are gone are swept
    before a refusal."""
    states = _limited(tx, request, waiter_id)
    outcome = grant(states, request.prompt_tokens, request.max_tokens, request.min_out)
    if isinstance(outcome, BudgetExceeded) and tx.sweep():
        states = _limited(tx, request, waiter_id)
        outcome = grant(states, request.prompt_tokens, request.max_tokens, request.min_out)
    return outcome


def _contended(tx: LedgerTx, request: GrantRequest) -> BudgetExceeded:
    states = _limited(tx, request, None)
    tight = min(states, key=lambda st: st.free) if states else None
    if tight is None:
        return BudgetExceeded(TOTAL, request.prompt_tokens, 0, 0, waitable=True)
    needed = request.prompt_tokens + request.min_out
    return BudgetExceeded(
        tight.scope, needed, tight.free, tight.limit, tight.reserved, waitable=True
    )


def _limited(tx: LedgerTx, request: GrantRequest, waiter_id: str | None) -> list[ScopeState]:
    """The limited scopes of a call, with their committed, reserved and waiting calls; the run's
    limit is written first when it is new or changed."""
    rows = tx.states(request.scopes, waiter_id)
    if request.run_limit is not None and not any(
        r.scope == request.run_scope and r.limit == request.run_limit for r in rows
    ):
        tx.set_run_limit(request.run_scope, request.run_limit)
        rows = tx.states(request.scopes, waiter_id)
    return [
        ScopeState(r.scope, r.limit, r.committed, r.reserved, r.waiting)
        for r in rows
        if r.limit is not None
    ]


class Wait:
    """The bounded, backed-off wait of one `areserve` for calls in flight to settle."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, poll_max: float) -> None:
        self.loop = loop
        self.seconds = seconds
        self.began = loop.time()
        self.deadline = self.began + max(0.0, seconds)
        self.delay = _POLL_FIRST_S
        self.poll_max = poll_max
        self.queued = False  # a refusal put this call in the ledger's wait queue

    async def pause(self, refused: BudgetExceeded, wake: asyncio.Event) -> None:
        """Wait for a settle (or the next poll); raise the refusal when it cannot be waited out."""
        left = self.deadline - self.loop.time()
        if not refused.waitable:
            raise refused
        if left <= 0:
            if self.seconds <= 0:
                raise refused
            raise BudgetExceeded(
                refused.scope,
                refused.needed,
                refused.remaining,
                refused.limit,
                refused.in_flight,
                waited=self.loop.time() - self.began,
            )
        # A settle of this process (or, on a team database, a notification) wakes us at once;
        # other processes' settles are otherwise seen by polling.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), min(self.delay, left))
        self.delay = min(self.delay * 2, self.poll_max)
