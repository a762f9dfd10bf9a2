"""One read of the team ledger's scopes for a whole batch of calls, instead of one per call.

A batch (core/ledger_worker.py) runs under the ledger's write lock, so from its first statement to
its commit no other writer changes a scope row. Asked one by one, its calls' looks at their scopes
would each wait for a round trip to the server, and on a busy interpreter for the worker thread's
turn at it after each: most of a batch's time. So the batch reads every scope its calls will look
at in one statement (`Looks.read`, with the lock), and each look is answered from that read with
the batch's own writes before it applied: holds, settles, the wait queue, run limits.

Where it cannot follow a write (a window opened, a sweep, an admin's write, a settle whose hold
size is not given), it forgets and the looks after it ask the server. A look answered wrong could
only let a hold through that the server then refuses: `reserve` is a conditional write on the
server, and a refused hold in a batch reruns the batch one call to a transaction, each with a look
of its own. A look can cost a rerun, never a limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentls.core.events import Usage
from agentls.core.stores.ledger import RunLimit, ScopeRow
from agentls.core.stores.pg_ledger_sql import names_param, with_names
from agentls.core.stores.postgres import SCHEMA

# Each scope's limit, usage, reservations and the waiters in its queue (ids: each look counts
# the others than itself).
READ = (
    "SELECT s.scope, s.lim, s.input + s.output, s.reserved, (SELECT array_agg(w.id) FROM "
    f"{SCHEMA}.waiters w WHERE w.scope = s.scope AND w.expires > now()) FROM {SCHEMA}.scopes s "
    "WHERE s.scope = ANY ($NAMES)"
)


@dataclass
class _Row:
    limit: int | None
    committed: int
    reserved: int
    waiters: set[str] = field(default_factory=set)


class Looks:
    """The scope rows a batch read, kept up to date with the batch's writes."""

    def __init__(self, rows: dict[str, _Row], known: Iterable[str]) -> None:
        self._rows = rows
        # Scopes whose state is known: read (a scope absent from `_rows` has no row) or written.
        self._known = set(known)

    @classmethod
    def read(cls, conn: Any, scopes: Sequence[str]) -> Looks:
        names, value = names_param(scopes)
        rows = {
            scope: _Row(lim, int(used), int(reserved), set(waiters or ()))
            for scope, lim, used, reserved, waiters in conn.execute(
                with_names(READ, names), (value,)
            ).fetchall()
        }
        return cls(rows, scopes)

    def knows(self, scopes: Sequence[str]) -> bool:
        """Whether every one of `scopes` can be answered here."""
        return self._known.issuperset(scopes)

    def rows(self, scopes: Sequence[str], waiter_id: str | None) -> list[ScopeRow]:
        """The rows `PgLedgerTx.states` would read (of `scopes` this `knows`)."""
        answered = []
        for scope in dict.fromkeys(scopes):
            row = self._rows.get(scope)
            if row is None:
                continue
            waiting = 0 if row.limit is None else len(row.waiters - {waiter_id})
            answered.append(ScopeRow(scope, row.limit, row.committed, row.reserved, waiting))
        return answered

    def run_limit_differs(self, run: RunLimit) -> bool:
        """Whether setting the run's limit writes anything (of a scope this `knows`)."""
        row = self._rows.get(run.scope)
        return row is None or row.limit != run.limit

    def set_run_limit(self, scope: str, limit: int | None) -> None:
        row = self._rows.get(scope)
        if row is None:
            if scope in self._known:
                self._rows[scope] = _Row(limit, 0, 0)
            return
        row.limit = limit

    def held(self, scopes: Sequence[str], tokens: int) -> None:
        """A hold went out (its answer comes later: were it refused, the batch runs again)."""
        for scope in scopes:
            row = self._rows.get(scope)
            if row is not None:
                row.reserved += tokens
            elif scope in self._known:  # `reserve` makes the row, without a limit
                self._rows[scope] = _Row(None, 0, tokens)

    def settled(self, scopes: Sequence[str], held: int | None, usage: Usage | None) -> None:
        """A hold of `held` tokens was dropped, its usage (if any) committed in its place."""
        if held is None:
            self.forget(scopes)
            return
        for scope in scopes:
            row = self._rows.get(scope)
            if row is None:
                self._known.discard(scope)  # a commit after its lease ran out makes the row
                continue
            row.reserved = max(0, row.reserved - held)
            if usage is not None:
                row.committed += usage.input_tokens + usage.output_tokens

    def queued(self, waiter_id: str, scopes: Sequence[str]) -> None:
        for scope in scopes:
            row = self._rows.get(scope)
            if row is not None:
                row.waiters.add(waiter_id)
            else:
                self._known.discard(scope)  # a queue without a row: not one this follows

    def left(self, waiter_id: str) -> None:
        for row in self._rows.values():
            row.waiters.discard(waiter_id)

    def forget(self, scopes: Iterable[str]) -> None:
        for scope in scopes:
            self._known.discard(scope)
            self._rows.pop(scope, None)
