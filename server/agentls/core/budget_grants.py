"""How much of its budgets a model call is granted (`Reservation`), or why it is refused
(`BudgetExceeded`, core/budget_refusal.py).

The budget (budget.py, budget_reserve.py) reads each scope's limit, committed spend, reservations
in flight and waiting calls from the ledger's store, and asks `grant` for the call's `max_tokens`. The least a call is granted is its
prompt plus the smallest useful answer (`budget.minOutputTokens`); a refusal is `waitable` when
only other calls' reservations are in the way, so the caller may wait for them to settle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentls.core.bounds import MAX_SECONDS
from agentls.core.budget_limits import TOTAL, check_limit
from agentls.core.budget_refusal import BudgetExceeded

if TYPE_CHECKING:
    from agentls.core.pricing import CallPrice

# How long a call waits for other calls' reservations to settle before it is refused
# (`budget.waitSeconds`), and the most that can be set.
DEFAULT_WAIT_SECONDS = 60.0
MAX_WAIT_SECONDS = MAX_SECONDS
# The smallest answer a call is granted (`budget.minOutputTokens`): below it a call is refused
# rather than cut short. Low enough that the last tokens of a budget still serve a short call.
DEFAULT_MIN_OUTPUT_TOKENS = 32


@dataclass(eq=False)
class Reservation:
    """Tokens held for one model call until `commit` or `release`.

    `max_tokens` is what the caller must pass to the model: it may be smaller than requested when
    the budget only covered a shrunk answer.
    """

    id: str
    run_id: str
    agent: str
    tokens: int
    max_tokens: int
    prompt_tokens: int
    scopes: tuple[str, ...]
    settled: bool = field(default=False, repr=False)
    # Under a dollar limit, a second hold: `nanos` nano-dollars in each of `dollar_scopes`, at the
    # model's `price` (core/pricing.py), committed as the call's cost.
    dollar_id: str | None = None
    nanos: int = 0
    dollar_scopes: tuple[str, ...] = ()
    price: CallPrice | None = field(default=None, repr=False)

    @property
    def holds(self) -> tuple[str, ...]:
        """The ids this reservation holds in the store (its leases)."""
        return (self.id,) if self.dollar_id is None else (self.id, self.dollar_id)


@dataclass(frozen=True)
class GrantRequest:
    """One call's reservation request, checked."""

    run_id: str
    agent: str
    prompt_tokens: int
    max_tokens: int
    run_limit: int | None
    min_out: int
    scopes: tuple[str, ...]
    # Who makes the call (their limits apply: core/budget_limits.py) and what its tokens cost
    # (None: no known price, refused under a dollar limit).
    user: str | None = None
    price: CallPrice | None = None
    model: str | None = None
    # The time that picks a period's window (None: now).
    now: float | None = None

    @classmethod
    def of(
        cls,
        run_id: str,
        agent: str,
        prompt_tokens: int,
        max_tokens: int,
        run_limit: int | None,
        min_output_tokens: int,
        ancestor_run_ids: Sequence[str],
        user: str | None = None,
        price: CallPrice | None = None,
        model: str | None = None,
        now: float | None = None,
    ) -> GrantRequest:
        if prompt_tokens < 0 or max_tokens < 1:
            raise ValueError("prompt_tokens must be >= 0 and max_tokens >= 1")
        check_limit(run_limit)
        scopes = tuple(
            dict.fromkeys(
                [f"run:{run_id}", f"agent:{agent}", TOTAL, *(f"run:{a}" for a in ancestor_run_ids)]
            )
        )
        min_out = min(max_tokens, max(1, min_output_tokens))
        return cls(
            run_id, agent, prompt_tokens, max_tokens, run_limit, min_out, scopes, user, price,
            model, now,
        )  # fmt: skip

    @property
    def run_scope(self) -> str:
        return self.scopes[0]


@dataclass(frozen=True)
class ScopeState:
    scope: str
    limit: int
    committed: int
    reserved: int
    waiting: int  # other calls waiting on this scope

    @property
    def free(self) -> int:
        return self.limit - self.committed - self.reserved


def grant(
    states: Sequence[ScopeState],
    prompt_tokens: int,
    max_tokens: int,
    min_out: int,
    *,
    price: tuple[int, int] = (1, 1),
    unit: str = "tokens",
) -> int | BudgetExceeded:
    """The max_tokens the budget allows (maybe shrunk), or why not (`waitable` when only
    reservations in flight are in the way).

    The least a call is granted is its prompt plus `min_out` (the smallest useful answer). What a
    scope has left is shared by the calls waiting on it, but only by as many as it can serve at
    that minimum: 140 tokens left for several waiting 80-token prompts go whole to one call,
    not in slices too small for any.

    `price` is what a prompt token and an answer token take from the scopes: one token each for
    token limits, their nano-dollars (core/pricing.py `CallPrice`) for dollar limits.
    """
    per_in, per_out = price
    base = prompt_tokens * per_in
    needed = base + min_out * per_out
    for st in sorted(states, key=lambda st: st.limit - st.committed):
        if st.limit - st.committed < needed:
            return BudgetExceeded(st.scope, needed, st.free, st.limit, st.reserved, unit=unit)
    short = [st for st in states if st.free < needed]
    if short:
        tightest = min(short, key=lambda st: st.free)
        return BudgetExceeded(
            tightest.scope,
            needed,
            tightest.free,
            tightest.limit,
            tightest.reserved,
            waitable=True,
            unit=unit,
        )
    allowed = max_tokens
    if needed == 0:
        return allowed  # a free model: nothing to share
    for st in states:
        sharers = min(st.waiting + 1, st.free // needed)
        if per_out:
            allowed = min(allowed, (st.free // sharers - base) // per_out)
    return allowed
