"""What a limit applies to: the total, an agent or a user; in tokens or dollars; for all time or per
day, week or month (UTC windows). Each is a scope of the ledger, named here once.

    total, agent:review, user:alice              tokens, for all time (the first two as before)
    $total, $agent:review, $user:alice           dollars (in nano-dollars), for all time
    month/total, day/$user:alice                 a periodic limit: the row holds the limit only
    month/total/2026-12, day/$user:alice/2026-12-07, week/agent:review/2026-W49
                                                 one window of it: its usage, and the limit copied
                                                 from the template when the window opens

A window's row stays when the window ends (usage of past windows is kept); a new window starts at
nothing. Dollar scopes count nano-dollars where token scopes count tokens, so every store reserves
and commits them with the same conditional writes: a dollar scope's committed amount is kept as
its output count (its other parts stay 0). A scope counts from the moment it is limited: a limit
set in the middle of a month starts that month's window at what was spent since.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from agentls.core.bounds import MAX_TOKENS

if TYPE_CHECKING:
    from agentls.core.stores.ledger import LedgerTx

# The scope every call holds: the whole ledger's (the workspace's, or a team database's) total.
TOTAL = "total"
NANOS_PER_USD = 10**9
# The largest dollar limit: as many nano-dollars as the largest token limit has tokens.
MAX_USD = MAX_TOKENS // NANOS_PER_USD
_USD = "$"


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class Unit(enum.StrEnum):
    TOKENS = "tokens"
    USD = "usd"


def user_base(user: str) -> str:
    """The scope of a user (`/` and `%` escaped: the scope grammar uses `/`)."""
    return "user:" + quote(user, safe="@.-_+~:= ")


@dataclass(frozen=True)
class LimitKey:
    """A limit as `agentls budget set` names it: base `total`, `agent:<name>` or `user:<name>`."""

    base: str
    unit: Unit = Unit.TOKENS
    period: Period | None = None

    @property
    def scope(self) -> str:
        """The row holding the limit (a periodic limit's template)."""
        name = (_USD if self.unit is Unit.USD else "") + self.base
        return name if self.period is None else f"{self.period.value}/{name}"

    def window(self, now: float) -> str:
        """The row counting usage at `now`: the scope itself, or its current window."""
        if self.period is None:
            return self.scope
        return self.in_window(window_key(self.period, now))

    def in_window(self, stamp: str) -> str:
        """The row of this periodic limit's window `stamp` (`window_key`)."""
        return f"{self.scope}/{stamp}"

    @property
    def who(self) -> str:
        """`the workspace total`, `agent 'review'`, `user alice`."""
        kind, _, name = self.base.partition(":")
        if kind == "agent":
            return f"agent '{name}'"
        if kind == "user":
            return f"user {unquote(name)}"
        return "the total"

    def describe(self, now: float | None = None) -> str:
        """`the monthly dollar limit of user alice (2026-12, UTC)`."""
        unit = "dollar" if self.unit is Unit.USD else "token"
        every = {Period.DAY: "daily ", Period.WEEK: "weekly ", Period.MONTH: "monthly "}
        text = f"the {every[self.period] if self.period else ''}{unit} limit of {self.who}"
        if self.period is not None and now is not None:
            text += f" ({window_key(self.period, now)}, UTC)"
        return text

    @classmethod
    def of_scope(cls, scope: str) -> LimitKey | None:
        """The key of a plain or template scope (None for a run's scope or a window)."""
        period: Period | None = None
        head, slash, rest = scope.partition("/")
        if slash:
            if head not in Period.__members__.values() or "/" in rest:
                return None
            period, scope = Period(head), rest
        unit = Unit.TOKENS
        if scope.startswith(_USD):
            unit, scope = Unit.USD, scope[1:]
        if scope == "total" or scope.startswith(("agent:", "user:")):
            return cls(scope, unit, period)
        return None


def window_of(scope: str) -> tuple[LimitKey, str] | None:
    """A window scope's key and window (`2026-12`), else None."""
    template, slash, key = scope.rpartition("/")
    limit = LimitKey.of_scope(template) if slash else None
    if limit is None or limit.period is None:
        return None
    return limit, key


@functools.lru_cache(maxsize=256)
def keys_for(agent: str, user: str | None) -> tuple[tuple[LimitKey, str], ...]:
    """Every limit that could apply to a call of `agent` by `user`, with the scope holding it;
    but the plain token limits of the total and the agent (every call holds those scopes)."""
    bases = ["total", f"agent:{agent}", *([user_base(user)] if user else [])]
    keys = []
    for base in bases:
        for unit in Unit:
            for period in (None, *Period):
                if unit is Unit.TOKENS and period is None and not base.startswith("user:"):
                    continue  # the total's and the agent's: every call holds those already
                key = LimitKey(base, unit, period)
                keys.append((key, key.scope))
    return tuple(keys)


def window_key(period: Period, now: float) -> str:
    """The UTC window `now` falls in: `2026-12-07`, `2026-W49` (ISO week), `2026-12`."""
    when = datetime.fromtimestamp(now, UTC)
    if period is Period.DAY:
        return when.strftime("%Y-%m-%d")
    if period is Period.WEEK:
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02d}"
    return when.strftime("%Y-%m")


def window_end(period: Period, now: float | str) -> datetime:
    """When the window `now` falls in (or the window named `2026-12`) ends, in UTC: the next
    one starts."""
    if isinstance(now, str):
        day = _window_start(period, now)
    else:
        day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return day + timedelta(days=1)
    if period is Period.WEEK:
        return day + timedelta(days=7 - day.weekday())
    first = day.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


def _window_start(period: Period, key: str) -> datetime:
    if period is Period.WEEK:
        return datetime.strptime(key + "-1", "%G-W%V-%u").replace(tzinfo=UTC)
    return datetime.strptime(key, "%Y-%m-%d" if period is Period.DAY else "%Y-%m").replace(
        tzinfo=UTC
    )


def usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD


def check_limit(limit: int | None) -> None:
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_TOKENS
    ):
        raise ValueError(
            f"a token limit must be a whole number from 0 to {MAX_TOKENS:,} or None, got {limit!r}"
        )


def limit_scope(agent: str | None) -> str:
    """The scope of a token limit of the total (agent None) or of an agent."""
    return "total" if agent is None else f"agent:{agent}"


def limits_op(
    limits: Sequence[tuple[int | None, str | None]],
    lower: Sequence[tuple[int, str | None]] = (),
    *,
    keys: Sequence[tuple[LimitKey, int | None]] = (),
    now: float | None = None,
) -> Callable[[LedgerTx], None]:
    """One ledger transaction's worth of limit changes: (limit, agent) pairs, those that may only
    lower the limit in force, and limits of other keys (a period's opens its current window)."""
    for limit in [*(n for n, _ in [*limits, *lower]), *(n for _, n in keys)]:
        check_limit(limit)

    def run(tx: LedgerTx) -> None:
        for limit, agent in limits:
            tx.set_limit(limit_scope(agent), limit)
        for cap, agent in lower:
            tx.set_limit(limit_scope(agent), cap, lower_only=True)
        for key, amount in keys:
            tx.set_limit(key.scope, amount)
            if key.period is not None:
                tx.open_window(key.window(time.time() if now is None else now), key.scope)

    return run
