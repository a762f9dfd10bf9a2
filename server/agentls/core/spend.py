"""Spend from the audit trail: the tokens and dollars of model calls, grouped by user, agent,
model, workspace or day (UTC), computed in the store (one GROUP BY over the events' JSON, in the
SQLite file or the team's PostgreSQL database: `AuditBackend.spend_rows`).

Each model_call event carries its call's usage and cost (core/metering.py, core/pricing.py) and
who made it (core/who.py), so the trail alone answers "who spent what, on which repository,
with which model". Calls whose model had no price count in tokens and in `unpriced_calls`, not
in dollars; events recorded before agentls recorded costs or origins count the same way, under
an unknown user or workspace. A call cut short (cancelled, failed after billing) records a
model_call event too (`data.cut_short`), with the usage the ledger committed for it, so the spend
here is the ledger's.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from agentls.core.audit import AuditStore


class GroupBy(enum.StrEnum):
    USER = "user"
    AGENT = "agent"
    MODEL = "model"
    WORKSPACE = "workspace"
    DAY = "day"


@dataclass(frozen=True)
class Spend:
    """One group's spend; `key` None: events that do not say (recorded before agentls did)."""

    key: str | None
    runs: int
    calls: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    # Dollars of the priced calls; `unpriced_calls` had no price (the `prices` setting).
    cost_usd: float
    unpriced_calls: int

    @property
    def total_tokens(self) -> int:
        """Input (cached included) plus output (reasoning included), as budgets count."""
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"total_tokens": self.total_tokens}


@dataclass(frozen=True)
class SpendReport:
    by: GroupBy
    since: float | None
    rows: list[Spend]
    # Every call once (a run whose calls fall under two keys counts as one run here).
    total: Spend


def spend(store: AuditStore, by: GroupBy, since: float | None) -> SpendReport:
    """Spend per group since `since` (epoch seconds; None: all), dearest first (days in order);
    one query in the store (the workspace's SQLite file or the team's database)."""
    store.settle()
    *rows, whole = store.backend.spend_rows(by.value, since)
    found = [_spend(row) for row in rows]
    if by is GroupBy.DAY:
        found.sort(key=lambda s: s.key or "")
    else:
        found.sort(key=lambda s: (-s.cost_usd, -s.total_tokens, s.key or ""))
    return SpendReport(by, since, found, _spend(whole))


def _spend(row: tuple[Any, ...]) -> Spend:
    key, runs, calls, inp, cached, out, reasoning, cost, unpriced = row
    return Spend(
        key=None if key is None else str(key),
        runs=int(runs),
        calls=int(calls),
        input_tokens=int(inp),
        cached_input_tokens=int(cached),
        output_tokens=int(out),
        reasoning_tokens=int(reasoning),
        cost_usd=float(cost),
        unpriced_calls=int(unpriced or 0),
    )
