"""Setting a limit as people write it, once for every front end: the CLI's `agentls budget set`
and the editors' `agentls.budget` command both turn ('$50', per month, user alice) into the
limits of core/budget_limits.py here and write them the same way.

    '2M'    tokens (core/limits.py parses it)     '$50'   dollars
    'none'  removes the limit in tokens and the one in dollars of that scope and period
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentls.core.budget_limits import LimitKey, Period, Unit, usd, user_base
from agentls.core.limits import parse_dollar_limit, parse_token_limit

if TYPE_CHECKING:
    from agentls.core.budget import TokenBudgeter

# What a front end's `set` writes: each limit key with its amount (tokens or nano-dollars; None
# removes it).
LimitChanges = list[tuple[LimitKey, int | None]]


class LimitError(ValueError):
    """A limit that cannot be set; `argument` names the part at fault (`limit`, `user`, `agent`
    or `per`) so each front end can name it its own way (`--user`, `argument 'user'`)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


def limit_changes(
    limit: str | int | None,
    *,
    agent: str | None = None,
    user: str | None = None,
    per: str | None = None,
) -> LimitChanges:
    """The limits one `set` changes. `limit` is text ('20k', '1.5M', '$50', 'none'), a whole
    number of tokens, or None (no limit); `agent` or `user` names whose limit it is (neither: the
    total); `per` is `day`, `week` or `month` for a limit that starts over each UTC window."""
    if agent is not None and user is not None:
        raise LimitError("user", "an agent's limit and a user's are different limits; give one")
    if agent is not None and not agent.strip():
        raise LimitError("agent", "the agent name is empty")
    if user is not None and not user.strip():
        raise LimitError("user", "the user name is empty")
    if per is not None and per not in Period.__members__.values():
        raise LimitError("per", f"expected 'day', 'week' or 'month', got {per!r}")
    base = (
        f"agent:{agent}"
        if agent is not None
        else user_base(user.strip())
        if user is not None
        else "total"
    )
    period = Period(per) if per is not None else None
    tokens: int | None
    if isinstance(limit, str):
        text = limit.strip()
        try:
            if text.startswith("$"):
                return [(LimitKey(base, Unit.USD, period), parse_dollar_limit(text))]
            tokens = parse_token_limit(text)
        except ValueError as exc:
            raise LimitError("limit", str(exc)) from None
    else:
        tokens = limit
    changes: LimitChanges = [(LimitKey(base, Unit.TOKENS, period), tokens)]
    if tokens is None:  # 'none' lifts the scope's limit whatever its unit
        changes.append((LimitKey(base, Unit.USD, period), None))
    return changes


def _split(changes: LimitChanges) -> tuple[list[tuple[int | None, str | None]], LimitChanges]:
    """The plain token limits of the total and of agents (written as settings write them), and
    the others (a user's, a period's, in dollars)."""
    plain: list[tuple[int | None, str | None]] = []
    others: LimitChanges = []
    for key, amount in changes:
        if key.unit is Unit.TOKENS and key.period is None and not key.base.startswith("user:"):
            plain.append((amount, key.base.removeprefix("agent:") if key.base != "total" else None))
        else:
            others.append((key, amount))
    return plain, others


def set_limits(budgeter: TokenBudgeter, changes: LimitChanges) -> str:
    """Write the limits (from synchronous code); the sentence saying what was set."""
    plain, others = _split(changes)
    budgeter.set_limits(plain)
    for key, amount in others:
        budgeter.set_limit_of(key, amount)
    return describe(changes, shared=budgeter.shared)


async def aset_limits(budgeter: TokenBudgeter, changes: LimitChanges) -> str:
    """`set_limits` in one transaction on the ledger's worker thread (never on the event loop)."""
    plain, others = _split(changes)
    await budgeter.aset_limits(plain, keys=others)
    return describe(changes, shared=budgeter.shared)


def describe(changes: LimitChanges, *, shared: bool = False) -> str:
    """`budget of user alice set to $50.00 a month (UTC)`; the total is the team's on a shared
    ledger (a team database)."""
    from agentls.core.pricing import format_usd

    key, amount = changes[0]
    every = f" a {key.period.value} (UTC)" if key.period else ""
    if amount is None:
        shown = "unlimited" + (f" per {key.period.value}" if key.period else "")
    elif key.unit is Unit.USD:
        shown = format_usd(usd(amount)) + every
    else:
        shown = f"{amount:,} tokens{every}"
    total = "the team's total" if shared else "the workspace total"
    target = total if key.base == "total" else key.who
    return f"budget of {target} set to {shown}"
