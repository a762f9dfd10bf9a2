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
from typing import Any, Protocol

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
    # Who ran it: `alice` matches `alice` and `alice@laptop` (core/who.py); on what: the
    # workspace as recorded, or the end of its remote URL (`acme/shop`), `.git` or not.
    user: str | None = None
    workspace: str | None = None


def user_forms(wanted: str) -> tuple[list[str], list[str]]:
    """The recorded users `wanted` matches: (exact values, prefixes)."""
    return [wanted], ([] if "@" in wanted else [wanted + "@"])


def workspace_forms(wanted: str) -> tuple[list[str], list[str]]:
    """The recorded workspaces `wanted` matches: (exact values, suffixes)."""
    bare = wanted.strip().rstrip("/").removesuffix(".git")
    if not bare:
        return [], []
    tail = bare.lstrip("/")
    exact = [bare, bare + ".git", bare + "/"]
    ends = [f"{sep}{tail}{end}" for sep in ("/", ":") for end in ("", ".git", "/")]
    return exact, ends


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

    def spend_rows(self, by: str, since: float | None) -> list[SpendRow]:
        """Model calls since `since` grouped by `by` (user, agent, model, workspace, day), and
        once more as a whole (key None, last): key, runs, calls, input, cached, output,
        reasoning tokens, dollars of the priced calls, calls without a price."""
        ...

    def close(self) -> None: ...


UsageRow = tuple[str, str, str, str | None, str | None]
SpendRow = tuple[Any, ...]

__all__ = [
    "TERMINAL_VALUES",
    "AuditBackend",
    "CloseRun",
    "EventKind",
    "EventQuery",
    "SpendRow",
    "UsageRow",
    "user_forms",
    "workspace_forms",
]
