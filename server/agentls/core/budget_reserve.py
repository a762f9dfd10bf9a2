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
import functools
import time
import uuid
from dataclasses import dataclass, field

from agentls.core.budget_grants import (
    GrantRequest,
    Reservation,
    ScopeState,
    grant,
)
from agentls.core.budget_limits import TOTAL, Period, Unit, keys_for, window_key, window_of
from agentls.core.budget_refusal import BudgetExceeded
from agentls.core.stores.ledger import Hold, LedgerTx, RunLimit, ScopeRow

_POLL_FIRST_S = 0.005
# Looks at the ledger a reservation may take when another machine took the room in between.
_HOLD_TRIES = 3


def reserve_in(
    tx: LedgerTx, request: GrantRequest, waiter_id: str | None, queued: bool
) -> Reservation | BudgetExceeded:
    """The check and the reservation, inside the caller's transaction.

    A refusal is returned, not raised, so that the writes it made (the run limit, the sweep
    of holders that are gone, the place in the queue, a window opened) commit with the rest of
    the batch.
    """
    now = request.now if request.now is not None else time.time()
    outcome: int | BudgetExceeded = 0
    plan = _Plan()
    for _ in range(_HOLD_TRIES):
        plan, outcome = _decide(tx, request, waiter_id if queued else None, now)
        if isinstance(outcome, BudgetExceeded):
            break
        reservation = _hold(tx, request, plan, outcome)
        if reservation is not None:
            if queued and waiter_id is not None:
                tx.leave_queue(waiter_id)
            return reservation
    if not isinstance(outcome, BudgetExceeded):  # others kept taking the room: wait for them
        outcome = _contended(plan, request)
    if outcome.waitable and waiter_id is not None and not queued:
        tx.join_queue(waiter_id, plan.token_scopes + plan.dollar_scopes)
    return outcome


@dataclass
class _Plan:
    """A call's limited scopes as they stand, and the scopes each of its holds covers."""

    tokens: list[ScopeState] = field(default_factory=list)
    dollars: list[ScopeState] = field(default_factory=list)
    token_scopes: tuple[str, ...] = ()
    dollar_scopes: tuple[str, ...] = ()


def _decide(
    tx: LedgerTx, request: GrantRequest, waiter_id: str | None, now: float
) -> tuple[_Plan, int | BudgetExceeded]:
    """The max_tokens the scopes allow now, or why not; holders that are gone are swept
    before a refusal."""
    plan = _plan(tx, request, waiter_id, now)
    outcome = _grant(request, plan)
    if isinstance(outcome, BudgetExceeded) and outcome.unpriced is None and tx.sweep():
        plan = _plan(tx, request, waiter_id, now)
        outcome = _grant(request, plan)
    return plan, outcome


def _grant(request: GrantRequest, plan: _Plan) -> int | BudgetExceeded:
    prompt, min_out = request.prompt_tokens, request.min_out
    outcome = grant(plan.tokens, prompt, request.max_tokens, min_out)
    if isinstance(outcome, BudgetExceeded) or not plan.dollars:
        return outcome
    price = request.price
    if price is None:  # a dollar limit cannot count a call it cannot price
        st = min(plan.dollars, key=lambda st: st.free)
        return BudgetExceeded(
            st.scope, 0, st.free, st.limit, unit=Unit.USD.value, unpriced=request.model or "?"
        )
    rates = (price.input, price.output)
    return grant(plan.dollars, prompt, outcome, min_out, price=rates, unit=Unit.USD.value)


def _hold(tx: LedgerTx, request: GrantRequest, plan: _Plan, max_tokens: int) -> Reservation | None:
    """Hold the tokens, and the dollars under a dollar limit, or nothing (None: another
    process took the room since the look)."""
    tokens = Hold(
        uuid.uuid4().hex,
        request.run_id,
        request.agent,
        request.prompt_tokens + max_tokens,
        plan.token_scopes,
    )
    if tx.hold(tokens) is not None:
        return None
    reservation = Reservation(
        id=tokens.id,
        run_id=request.run_id,
        agent=request.agent,
        tokens=tokens.tokens,
        max_tokens=max_tokens,
        prompt_tokens=request.prompt_tokens,
        scopes=plan.token_scopes,
    )
    if plan.dollars and request.price is not None:
        nanos = request.price.bound(request.prompt_tokens, max_tokens)
        dollars = Hold(uuid.uuid4().hex, request.run_id, request.agent, nanos, plan.dollar_scopes)
        if tx.hold(dollars) is not None:
            tx.settle(
                tokens.id, request.run_id, request.agent, plan.token_scopes, None, tokens.tokens
            )
            return None
        reservation.dollar_id, reservation.nanos = dollars.id, nanos
        reservation.dollar_scopes, reservation.price = plan.dollar_scopes, request.price
    return reservation


def _contended(plan: _Plan, request: GrantRequest) -> BudgetExceeded:
    unit, states = (Unit.TOKENS, plan.tokens) if plan.tokens else (Unit.USD, plan.dollars)
    if not states:
        return BudgetExceeded(TOTAL, request.prompt_tokens, 0, 0, waitable=True)
    tight = min(states, key=lambda st: st.free)
    needed = request.prompt_tokens + request.min_out
    if unit is Unit.USD and request.price is not None:
        needed = request.price.bound(request.prompt_tokens, request.min_out)
    return BudgetExceeded(
        tight.scope, needed, tight.free, tight.limit, tight.reserved, waitable=True, unit=unit
    )


def scopes_looked_at(request: GrantRequest) -> tuple[str, ...]:
    """Every scope `_plan` may look at for `request`: its own, every limit's that could apply,
    and the windows of those per period (a store may read a batch's in one go)."""
    now = request.now if request.now is not None else time.time()
    stamps = tuple(window_key(period, now) for period in Period)
    return tuple(
        dict.fromkeys([*request.scopes, *_limit_scopes(request.agent, request.user, stamps)])
    )


@functools.lru_cache(maxsize=64)
def _limit_scopes(agent: str, user: str | None, stamps: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes of every limit that could apply to `agent`'s calls by `user`, and of their
    windows (`stamps`: the window of each Period now)."""
    keys = keys_for(agent, user)
    of = dict(zip(Period, stamps, strict=True))
    windows = [key.in_window(of[key.period]) for key, _ in keys if key.period is not None]
    return tuple(dict.fromkeys([*(scope for _, scope in keys), *windows]))


def _plan(tx: LedgerTx, request: GrantRequest, waiter_id: str | None, now: float) -> _Plan:
    """The call's limited scopes: its run, agent and total as always; and the limits of
    core/budget_limits.py that exist (a user's, a period's, in tokens or dollars), each
    period's window opened (its limit copied) on first use. The run's limit is written first
    (when it is new or changed). One look at the ledger when no such limit exists."""
    keys = keys_for(request.agent, request.user)
    names = [*request.scopes, *(scope for _, scope in keys)]
    # The run's limit is written with the look (a write that changes nothing when the limit is
    # the same), and the look sees it: one look instead of two.
    run = None if request.run_limit is None else RunLimit(request.run_scope, request.run_limit)
    rows = {r.scope: r for r in tx.states(names, waiter_id, run)}
    limited = [
        (k, rows[scope]) for k, scope in keys if scope in rows and rows[scope].limit is not None
    ]
    windows = {k.window(now): row for k, row in limited if k.period is not None}
    if windows:
        opened = {r.scope: r for r in tx.states(list(windows), waiter_id)}
        stale = [w for w, template in windows.items() if _stale(opened.get(w), template)]
        for window in stale:
            key, _ = window_of(window) or (None, None)
            if key is not None:
                tx.open_window(window, key.scope)
        if stale:
            opened = {r.scope: r for r in tx.states(list(windows), waiter_id)}
        rows.update(opened)
    plan = _Plan(token_scopes=request.scopes)
    plan.tokens = [
        _state(rows[s]) for s in request.scopes if s in rows and rows[s].limit is not None
    ]
    for key, _ in limited:
        scope = key.window(now)
        row = rows.get(scope)
        if row is None or row.limit is None:
            continue
        if key.unit is Unit.USD:
            plan.dollars.append(_state(row))
            plan.dollar_scopes += (scope,)
        else:
            plan.tokens.append(_state(row))
            plan.token_scopes += (scope,)
    return plan


def _stale(window: ScopeRow | None, template: ScopeRow) -> bool:
    return window is None or window.limit != template.limit


def _state(row: ScopeRow) -> ScopeState:
    assert row.limit is not None
    return ScopeState(row.scope, row.limit, row.committed, row.reserved, row.waiting)


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
            raise refused.after_waiting(self.loop.time() - self.began)
        # A settle of this process (or, on a team database, a notification) wakes us at once;
        # other processes' settles are otherwise seen by polling.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), min(self.delay, left))
        self.delay = min(self.delay * 2, self.poll_max)
