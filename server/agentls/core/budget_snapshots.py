"""What the budget shows: used, limit, remaining and reserved tokens of the total, each agent and
each run (`agentls budget`, the status bar, `agentls.budget`, the MCP budget tool)."""

from __future__ import annotations

from pydantic import BaseModel

from agentls.core.budget_grants import TOTAL
from agentls.core.events import Usage
from agentls.core.stores.ledger import LedgerTx, ScopeTotals


class BudgetScopeSnapshot(BaseModel):
    used: int
    limit: int | None
    remaining: int | None
    reserved: int
    usage: Usage


class BudgetSnapshot(BaseModel):
    used: int
    limit: int | None
    remaining: int | None
    reserved: int
    usage: Usage
    agents: dict[str, BudgetScopeSnapshot]


def scope_snapshot(totals: ScopeTotals) -> BudgetScopeSnapshot:
    used = totals.usage.total
    limit = totals.limit
    remaining = None if limit is None else max(0, limit - used - totals.reserved)
    return BudgetScopeSnapshot(
        used=used, limit=limit, remaining=remaining, reserved=totals.reserved, usage=totals.usage
    )


def snapshot_in(tx: LedgerTx) -> BudgetSnapshot:
    """The total and every agent, read in `tx`."""
    totals = {t.scope: t for t in tx.totals()}
    agents = {
        scope.removeprefix("agent:"): scope_snapshot(t)
        for scope, t in sorted(totals.items())
        if scope != TOTAL
    }
    total = scope_snapshot(totals.get(TOTAL) or ScopeTotals(TOTAL, None, Usage(), 0))
    return BudgetSnapshot(**total.model_dump(), agents=agents)
