"""Why a model call is refused (`BudgetExceeded`), and how the refusal says it: one sentence
for each kind of limit, with what to do.

The token limits of the total, an agent and a run have their sentences in the class; the limits
of core/budget_limits.py (a user's, a period's, a dollar limit's, and a model without a price under
a dollar limit) and the total of a team database in the functions below. On a team database (the
ledger's store is `shared`) the total is the team's, not the workspace's, and only its admins
change it: the sentence says so, so nobody hunts for a workspace setting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from agentls.core.budget_limits import TOTAL, LimitKey, Unit, window_end, window_of
from agentls.core.pricing import format_usd

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


def limit_message(refused: BudgetExceeded) -> str:
    key, window = _key_of(refused.scope)
    now = time.time()
    if refused.unpriced is not None:
        model = refused.unpriced
        return (
            f"Model '{model}' has no known price, and {_what(key)} applies to this call, so "
            "it cannot be counted against that limit: give the model a price in the `prices` "
            "setting (dollars per million tokens, e.g. "
            f'"prices": {{"{model}": {{"input": 0.5, "output": 1.5}}}} in '
            "~/.config/agentls/settings.json or the editor's agentls settings)."
        )
    dollars = refused.unit == Unit.USD.value

    def amount(n: int) -> str:
        return format_usd(n / 1e9) if dollars else f"{n:,} tokens"

    held = (
        f", {amount(refused.in_flight)} more held by calls in flight," if refused.in_flight else ""
    )
    waited = (
        f" (waited {refused.waited:.3g} s for calls in flight to settle)"
        if refused.waited > 0
        else ""
    )
    what = _what(key, window)
    if refused.shared and key is not None and key.base == "total":
        what = what.replace(f" of {key.who}", " of the team's total", 1)
    text = (
        f"{what[0].upper()}{what[1:]} is spent: the next model call needs at least "
        f"{amount(refused.needed)} but only {amount(refused.remaining)}{held} of its "
        f"{amount(refused.limit)} remain{waited}; "
    )
    if key is None:
        return text + "an admin raises it with `agentls budget set`."
    if key.period is not None:
        starts = window_end(key.period, window or now).strftime("%Y-%m-%d %H:%M UTC")
        text += f"it starts over at {starts}, or "
    who = "an admin of the team database raises" if refused.shared else "raise"
    return text + f"{who} it with `{_set_command(key)}`."


def team_total_message(refused: BudgetExceeded) -> str:
    """The team database's token total is spent (the workspace's has its own sentence)."""
    held = f", {refused.in_flight:,} more held by calls in flight," if refused.in_flight else ""
    waited = (
        f" (waited {refused.waited:.3g} s for calls in flight to settle)"
        if refused.waited > 0
        else ""
    )
    return (
        f"Team token budget exhausted: the next model call needs at least {refused.needed:,} "
        f"tokens but only {refused.remaining:,}{held} of the team's {refused.limit:,}-token "
        f"total in the team database remain{waited}; an admin of the team database raises it "
        "with `agentls budget set N` or starts over with `agentls budget reset`."
    )


def _key_of(scope: str) -> tuple[LimitKey | None, str | None]:
    found = window_of(scope)
    if found is not None:
        return found
    return LimitKey.of_scope(scope), None


def _what(key: LimitKey | None, window: str | None = None) -> str:
    if key is None:
        return "the limit"
    text = key.describe()
    return f"{text} ({window}, UTC)" if window else text


def _set_command(key: LimitKey) -> str:
    amount = "'$N'" if key.unit is Unit.USD else "N"
    parts = ["agentls budget set", amount]
    if key.period is not None:
        parts.append(f"--per {key.period.value}")
    kind, _, name = key.base.partition(":")
    if kind == "agent":
        parts.append(f"--agent {name}")
    elif kind == "user":
        parts.append(f"--user {unquote(name)}")
    return " ".join(parts)
