"""What the budget shows: used, limit, remaining and reserved tokens of the total, each agent and
each run, and the other limits (a user's, a period's, in dollars: core/budget_limits.py) in
their own units (`agentls budget`, the status bar, `agentls.budget`, the MCP budget tool)."""

from __future__ import annotations

import time
from urllib.parse import unquote

from pydantic import BaseModel, Field

from agentls.core.budget_limits import TOTAL, LimitKey, Unit, usd, window_key
from agentls.core.events import Usage
from agentls.core.stores.ledger import LedgerTx, ScopeTotals


class BudgetScopeSnapshot(BaseModel):
    used: int
    limit: int | None
    remaining: int | None
    reserved: int
    usage: Usage


class LimitSnapshot(BaseModel):
    """A limit of core/budget_limits.py and its current window: amounts in tokens, or dollars."""

    scope: str
    applies_to: str  # total, agent or user
    name: str | None  # the agent's or the user's
    unit: str  # tokens or usd
    period: str | None  # day, week or month (UTC)
    window: str | None  # 2026-12-07, 2026-W49, 2026-12
    limit: int | float
    used: int | float
    reserved: int | float
    remaining: int | float


class BudgetSnapshot(BaseModel):
    used: int
    limit: int | None
    remaining: int | None
    reserved: int
    usage: Usage
    agents: dict[str, BudgetScopeSnapshot]
    limits: list[LimitSnapshot] = Field(default_factory=list)


def scope_snapshot(totals: ScopeTotals) -> BudgetScopeSnapshot:
    used = totals.usage.total
    limit = totals.limit
    remaining = None if limit is None else max(0, limit - used - totals.reserved)
    return BudgetScopeSnapshot(
        used=used, limit=limit, remaining=remaining, reserved=totals.reserved, usage=totals.usage
    )


def snapshot_in(tx: LedgerTx, now: float | None = None) -> BudgetSnapshot:
    """The total and every agent, and the other limits in their windows at `now`, read in `tx`."""
    totals = {t.scope: t for t in tx.totals()}
    agents = {
        scope.removeprefix("agent:"): scope_snapshot(t)
        for scope, t in sorted(totals.items())
        if scope != TOTAL
    }
    total = scope_snapshot(totals.get(TOTAL) or ScopeTotals(TOTAL, None, Usage(), 0))
    return BudgetSnapshot(**total.model_dump(), agents=agents, limits=limits_in(tx, now))


def limits_in(tx: LedgerTx, now: float | None = None) -> list[LimitSnapshot]:
    """Every limit but the total's and the agents' in tokens (shown above them), with the usage
    of its current window."""
    now = time.time() if now is None else now
    shown: list[LimitSnapshot] = []
    for row in tx.limits():
        key = LimitKey.of_scope(row.scope)
        if key is None or row.limit is None:
            continue  # a window: shown with its template
        if key.unit is Unit.TOKENS and key.period is None and not key.base.startswith("user:"):
            continue
        current = tx.scope_totals(key.window(now)) if key.period is not None else row
        kind, _, name = key.base.partition(":")
        scale = (lambda n: n) if key.unit is Unit.TOKENS else usd
        used, reserved = current.usage.total, current.reserved
        shown.append(
            LimitSnapshot(
                scope=row.scope,
                applies_to=kind,
                name=unquote(name) if name else None,
                unit=key.unit.value,
                period=key.period.value if key.period else None,
                window=window_key(key.period, now) if key.period else None,
                limit=scale(row.limit),
                used=scale(used),
                reserved=scale(reserved),
                remaining=scale(max(0, row.limit - used - reserved)),
            )
        )
    return shown
