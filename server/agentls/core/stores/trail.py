"""The audit trail's storage interface: what the audit store (core/audit.py) asks of a backend.

The audit store redacts events and group-commits them; a backend writes each batch in one
transaction (idempotent on the event id: writing an event twice stores it once) and answers the
queries. Events are stored as their JSON beside the columns queries filter on, so reading gives
back equal RunEvents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentls.core.events import TERMINAL_KINDS, EventKind, RunEvent

TERMINAL_VALUES = tuple(sorted(k.value for k in TERMINAL_KINDS))


@dataclass(frozen=True)
class EventQuery:
    """Events matching every filter given; with `limit`, the latest `limit` of them."""

    run_id: str | None = None
    agent: str | None = None
    since: float | None = None
    kinds: tuple[str, ...] | None = None  # EventKind values; () matches nothing
    limit: int | None = None
    descendants: bool = False  # `run_id` also matches every run delegated from it


# Given a run's STARTED event and its events so far, the closing event to append when its process
# is gone, or None while it lives.
CloseRun = Callable[[RunEvent, list[RunEvent]], RunEvent | None]


class AuditBackend(Protocol):
    path: Path | None
    where: str
    shared: bool

    def write(self, events: list[RunEvent]) -> None:
        """Store redacted events in one transaction; an event id already stored is skipped."""
        ...

    def select_json(self, query: EventQuery) -> list[str]:
        """The matching events' JSON, in the order they happened (time, then insertion)."""
        ...

    def recover(self, close: CloseRun) -> list[str]:
        """Append the closing event `close` gives for each open run this machine can check, in
        one transaction with the look; return the run ids closed."""
        ...

    def prune(self, before: float) -> int:
        """Remove the events of finished runs whose latest event is older than `before`."""
        ...

    def usage_rows(self, kinds: tuple[str, ...], since: float | None) -> list[UsageRow]:
        """Per event of `kinds`: run id, agent, kind, call usage JSON, usage JSON (time order)."""
        ...

    def run_ids(self, prefix: str) -> list[str]:
        """Run ids starting with `prefix`, newest first."""
        ...

    def close(self) -> None: ...


UsageRow = tuple[str, str, str, str | None, str | None]

__all__ = ["TERMINAL_VALUES", "AuditBackend", "CloseRun", "EventKind", "EventQuery", "UsageRow"]
