"""What a refusal says for the limits of core/budget_limits.py: a user's, a period's, a dollar
limit's, and a model without a price under a dollar limit; and for the total of a team database.
One sentence each, with what to do.

On a team database (the ledger's store is `shared`) the total is the team's, not the workspace's,
and only its admins change it: the sentence says so, so nobody hunts for a workspace setting."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agentls.core.budget_limits import LimitKey, Unit, window_end, window_of
from agentls.core.pricing import format_usd

if TYPE_CHECKING:
    from agentls.core.budget_grants import BudgetExceeded


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
        from urllib.parse import unquote

        parts.append(f"--user {unquote(name)}")
    return " ".join(parts)
