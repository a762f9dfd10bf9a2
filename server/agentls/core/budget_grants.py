"""How much of its budgets a model call is granted (`Reservation`), or why it is refused
(`BudgetExceeded`).

The budget (budget.py, budget_reserve.py) reads each scope's limit, committed spend, reservations
in flight and waiting calls from the ledger's store, and asks `grant` for the call's `max_tokens`. The least a call is granted is its
prompt plus the smallest useful answer (`budget.minOutputTokens`); a refusal is `waitable` when
only other calls' reservations are in the way, so the caller may wait for them to settle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentls.core.bounds import MAX_SECONDS
from agentls.core.budget_limits import check_limit

if TYPE_CHECKING:
    from agentls.core.pricing import CallPrice

TOTAL = "total"

# How long a call waits for other calls' reservations to settle before it is refused
# (`budget.waitSeconds`), and the most that can be set.
DEFAULT_WAIT_SECONDS = 60.0
MAX_WAIT_SECONDS = MAX_SECONDS
# The smallest answer a call is granted (`budget.minOutputTokens`): below it a call is refused
# rather than cut short. Low enough that the last tokens of a budget still serve a short call.
DEFAULT_MIN_OUTPUT_TOKENS = 32


# What rebuilds a BudgetExceeded, in `_rebuild_budget_exceeded`'s order.
_FIELDS = (
    "scope", "needed", "remaining", "limit", "in_flight", "waited", "waitable", "unit",
    "unpriced", "shared",
)  # fmt: skip


class BudgetExceeded(Exception):
    """A model call was refused because a scope's remaining budget cannot cover it.

    `needed` is the least the call needed (prompt plus the smallest useful answer), `remaining`
    what the tightest scope had left, `limit` that scope's limit, `in_flight` the tokens other
    calls held in it at the time.
    """

    def __init__(
        self,
        scope: str,
        needed: int,
        remaining: int,
        limit: int,
        in_flight: int = 0,
        waited: float = 0.0,
        *,
        waitable: bool = False,
        unit: str = "tokens",
        unpriced: str | None = None,
        shared: bool = False,
    ) -> None:
        self.scope = scope
        self.needed = needed
        self.remaining = max(0, remaining)
        self.limit = limit
        self.in_flight = in_flight
        # Seconds the call waited for in-flight calls to settle before it gave up.
        self.waited = waited
        # Committed spend leaves room: only reservations in flight are in the way.
        self.waitable = waitable
        # "tokens", or "usd" for a dollar limit (the amounts are then nano-dollars).
        self.unit = unit
        # The model without a price that a dollar limit refused.
        self.unpriced = unpriced
        # The ledger is a team's database: its total is the team's, not the workspace's.
        self.shared = shared
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Callable[..., BudgetExceeded], tuple[Any, ...]]:
        return (_rebuild_budget_exceeded, self._values())

    def _values(self, **changes: Any) -> tuple[Any, ...]:
        """The arguments that rebuild this refusal, with `changes` made."""
        return tuple(changes.get(name, getattr(self, name)) for name in _FIELDS)

    def on_team(self) -> BudgetExceeded:
        """The same refusal, said of a ledger the team shares (a team database)."""
        return _rebuild_budget_exceeded(*self._values(shared=True))

    def after_waiting(self, seconds: float) -> BudgetExceeded:
        """The same refusal, said after waiting `seconds` for calls in flight."""
        return _rebuild_budget_exceeded(*self._values(waited=seconds, waitable=False))

    @property
    def agent(self) -> str | None:
        return self.scope.removeprefix("agent:") if self.scope.startswith("agent:") else None

    @property
    def run_id(self) -> str | None:
        return self.scope.removeprefix("run:") if self.scope.startswith("run:") else None

    def _message(self) -> str:
        if self.unpriced is not None or (
            self.scope not in (TOTAL,) and not self.scope.startswith(("agent:", "run:"))
        ):
            from agentls.core.budget_messages import limit_message

            return limit_message(self)
        need = f"the next model call needs at least {self.needed:,} tokens"
        held = f", {self.in_flight:,} more held by calls in flight," if self.in_flight else ""
        left = f"only {self.remaining:,}{held} of"
        waited = (
            f" (waited {self.waited:.3g} s for calls in flight to settle)"
            if self.waited > 0
            else ""
        )
        if self.scope == TOTAL and self.shared:
            from agentls.core.budget_messages import team_total_message

            return team_total_message(self)
        if self.scope == TOTAL:
            return (
                f"Workspace token budget exhausted: {need} but {left} the {self.limit:,}-token "
                f"total remain{waited}; raise it with `agentls budget set N` or start over with "
                "`agentls budget reset`."
            )
        if (agent := self.agent) is not None:
            return (
                f"Token budget of agent '{agent}' exhausted: {need} but {left} its "
                f"{self.limit:,}-token limit remain{waited}; raise it with "
                f"`agentls budget set N --agent {agent}` or start over with "
                f"`agentls budget reset --agent {agent}`."
            )
        return (
            f"Token budget of run {self.run_id} exhausted: {need} but {left} the run's "
            f"{self.limit:,}-token budget remain{waited}; raise the agent's `budget:` in its "
            "definition or pass a larger budget for the run."
        )


def _rebuild_budget_exceeded(
    scope: str,
    needed: int,
    remaining: int,
    limit: int,
    in_flight: int,
    waited: float,
    waitable: bool,
    unit: str = "tokens",
    unpriced: str | None = None,
    shared: bool = False,
) -> BudgetExceeded:
    return BudgetExceeded(
        scope,
        needed,
        remaining,
        limit,
        in_flight,
        waited,
        waitable=waitable,
        unit=unit,
        unpriced=unpriced,
        shared=shared,
    )


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
