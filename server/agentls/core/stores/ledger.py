"""The budget ledger's storage interface: what the budget policy (core/budget.py) asks of a store.

A store keeps, per scope (`total`, `agent:<name>`, `run:<id>`), a limit and the committed usage;
the reservations of calls in flight; and the calls waiting for them. The policy reads a call's
scopes (`states`), decides what to grant (core/budget_grants.py), and asks the store to `hold`
it; the store holds it only if every limited scope still covers it, in one conditional write, so
no interleaving of processes or machines holds or commits more than a limit.

Every operation runs inside a `LedgerTx` (`LedgerStore.transaction()`); several may share one,
in order (core/ledger_worker.py), and each sees what the ones before it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentls.core.events import Usage
from agentls.core.state_check import StateError


@dataclass(frozen=True)
class ScopeRow:
    """One scope of a call as the policy weighs it."""

    scope: str
    limit: int | None
    committed: int  # input + output tokens committed
    reserved: int  # held by calls in flight
    waiting: int  # other calls waiting on this scope


@dataclass(frozen=True)
class ScopeTotals:
    """One scope as a snapshot shows it."""

    scope: str
    limit: int | None
    usage: Usage
    reserved: int


@dataclass(frozen=True)
class Hold:
    """A reservation to make: `tokens` in each of `scopes` (their order is the lock order)."""

    id: str
    run_id: str
    agent: str
    tokens: int
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class RunLimit:
    """A run's limit as its call asks for it: `scope` is `run:<id>`."""

    scope: str
    limit: int


class LedgerTx(Protocol):
    """The ledger inside one transaction."""

    def states(
        self, scopes: Sequence[str], waiter_id: str | None, run: RunLimit | None = None
    ) -> list[ScopeRow]:
        """The rows of the scopes that exist (limited or not); waiters other than `waiter_id`.

        With `run`, that run's limit is set first (`set_run_limit`) and the rows are as after
        it: one statement where the store can make it one.
        """
        ...

    def set_run_limit(self, scope: str, limit: int | None) -> None:
        """Set a run's limit where it differs (creating its scope); write nothing where it is
        already that."""
        ...

    def hold(self, hold: Hold) -> str | None:
        """Hold `hold.tokens` in every scope, or nothing: None when held, else the scope that
        could not cover it (another process took the room since `states`)."""
        ...

    def join_queue(self, waiter_id: str, scopes: Sequence[str]) -> None: ...

    def leave_queue(self, waiter_id: str) -> None: ...

    def settle(
        self,
        hold_id: str,
        run_id: str,
        agent: str,
        scopes: Sequence[str],
        usage: Usage | None,
        held: int | None = None,
    ) -> None:
        """Drop the reservation; with `usage`, add it to every scope (a commit). A commit of an
        id already committed adds nothing (journals are replayed safely). `held` is what the
        reservation holds, where the caller knows it: a store that answers a batch's looks from
        one read keeps that read up to date with it (stores/pg_looks.py)."""
        ...

    def set_limit(self, scope: str, limit: int | None, *, lower_only: bool = False) -> None:
        """Set a total or agent limit (with `lower_only`, only where it is below the limit in
        force, in one statement); an agent scope left without limit or spend is dropped."""
        ...

    def open_window(self, window: str, template: str) -> None:
        """Create (or bring up to date) a period's window with its template's limit
        (core/budget_limits.py); on a team database any member may, for the admins' limit."""
        ...

    def limits(self) -> list[ScopeTotals]:
        """Every limited scope but runs' (totals, agents, users, templates and windows)."""
        ...

    def reset(self, agent: str | None) -> None:
        """Zero committed usage of the total and every agent (None), or of one agent."""
        ...

    def sweep(self) -> int:
        """Free what holders that are gone still hold (dead processes, expired leases); return
        how many reservations were freed."""
        ...

    def totals(self) -> list[ScopeTotals]:
        """The total and every agent scope that has a limit, spend or reservations."""
        ...

    def scope_totals(self, scope: str) -> ScopeTotals: ...

    def waiting_calls(self) -> int:
        """Calls waiting in the queue, counted once however many scopes they wait on."""
        ...


class LedgerStore(Protocol):
    """Where the ledger lives: `.agentls/ledger.db` or a team's PostgreSQL database."""

    # A file (SQLite), or None: in memory or in a database (then `where` names it).
    path: Path | None
    # How messages name the ledger (a path, or the database's URL without its password).
    where: str
    # Whether other machines share it (a team database).
    shared: bool
    # The longest pause between two looks at the ledger while a call waits: other processes'
    # settles are seen by polling at least this often.
    poll_max_seconds: float
    # How long the ledger's worker may wait for a batch to fill while calls are in flight
    # (core/ledger_worker.py): 0 where a transaction costs little (SQLite).
    gather_seconds: float

    def transaction(
        self, *, write: bool = True, flush_later: bool = False
    ) -> AbstractContextManager[LedgerTx]:
        """A transaction; committed when the block ends.

        With `flush_later`, a store whose commits wait for a server's disk may commit without
        waiting and give the transaction a `flush()` that waits for it instead (see
        core/ledger_worker.py, which delivers durable results only after it): the write lock is
        then not held while the disk syncs. A store without such a wait ignores it.
        """
        ...

    def watch(self, wake: WakeCallback) -> AbstractContextManager[None]:
        """While open, call `wake()` (from any thread) when another process may have made room."""
        ...

    def held(self, hold_id: str, held: bool) -> None:
        """This process holds (or no longer holds) `hold_id`: leases are renewed while held."""
        ...

    def keep(
        self, hold_id: str, run_id: str, agent: str, scopes: Sequence[str], usage: Usage
    ) -> bool:
        """Keep a commit that cannot be written now (the database is away) for later; False when
        this store has no such place (then the error stands)."""
        ...

    def unusable(self) -> StateError:
        """The error to raise when the ledger holds a number the budget cannot use."""
        ...

    def close(self) -> None: ...


class WakeCallback(Protocol):
    def __call__(self) -> None: ...
