"""The durable audit trail: every run event, appended to the workspace's (or team's) store.

Events are redacted (core/redact.py) and stored one row each: indexed columns for the fields that
queries filter on, plus the full event JSON, so reading gives back equal RunEvents. Where they
are stored is the backend's business (core/stores/): `<workspace>/.agentls/audit.db` by default
(SQLite in WAL mode, so the language server and child agentls processes append at once), or a
team's PostgreSQL database, where members may append and read but not change or delete.

Appends are group-committed (core/group_commit.py): `submit` queues an event and returns the
`Commit` of the batch it joined; a writer thread redacts and stores each batch in one transaction,
so concurrent runs share commits and the event loop never waits for the database. An event is
durable once its commit has ended: `append` (blocking) and `aappend` (awaited) return only then,
and raise what made the batch fail. The runtime submits each event as it happens and awaits its
run's commits before every step that acts (core/runtime.py), so a `kill -9` loses at most the
events of the step in progress. Runs whose process died without a closing event are closed as
INTERRUPTED by `recover_interrupted()`, which callers run at start-up. `export_jsonl` writes the
same events as JSON Lines.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from agentls.core.events import (
    TERMINAL_KINDS,
    TRANSIENT_KINDS,
    EventKind,
    RunEvent,
    RunStatus,
    Usage,
)
from agentls.core.group_commit import Commit, GroupCommit, committed
from agentls.core.redact import redact
from agentls.core.sqlite import SqliteFile, process_alive
from agentls.core.stores.trail import TERMINAL_VALUES, AuditBackend, EventQuery

AUDIT_FILE = "audit.db"

_INTERRUPTED_NS = uuid.UUID("6f1c2f0e-7a43-4b8e-9a51-3c0d6c1b2a77")


def redact_event(event: RunEvent) -> RunEvent:
    """The event with secrets removed from its free-form fields (goal, error, artifacts, data)."""
    return event.model_copy(
        update={
            "goal": redact(event.goal),
            "error": redact(event.error),
            "artifacts": redact(event.artifacts),
            "data": redact(event.data),
        }
    )


class AuditStore:
    """Append-only store of run events, shared by every process working on a workspace."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        synchronous: str = "NORMAL",
        backend: AuditBackend | None = None,
    ) -> None:
        """An SQLite file at `path` (`None` keeps events in memory: tests), or `backend`.

        With WAL, synchronous=NORMAL already survives a crash of any process; FULL also survives
        a power loss, at the price of an fsync per event.
        """
        if backend is None:
            from agentls.core.stores.sqlite_audit import SqliteAudit

            backend = SqliteAudit(path, synchronous=synchronous)
        self.backend = backend
        self.path = backend.path
        name = backend.path.name if backend.path else "team" if backend.shared else "memory"
        self._writer: GroupCommit[RunEvent] = GroupCommit(
            self._store_batch, name=f"agentls-audit-writer:{name}"
        )

    @classmethod
    def for_workspace(
        cls, root: Path, *, synchronous: str = "NORMAL", database_url: str | None = None
    ) -> AuditStore:
        """The workspace's trail: the team database when one is named (`database_url`, else
        `AGENTLS_DATABASE_URL`), else `<root>/.agentls/audit.db`."""
        from agentls.core.stores.select import audit_backend

        return cls(backend=audit_backend(root, database_url, synchronous=synchronous))

    @property
    def shared(self) -> bool:
        """Whether other machines share this trail (a team database)."""
        return self.backend.shared

    @property
    def _db(self) -> SqliteFile:
        """The SQLite file (tests put it in the states a full disk or a read-only file leave)."""
        return self.backend.db  # type: ignore[attr-defined]

    def close(self) -> None:
        """Write every event submitted so far, then close the database."""
        self._writer.flush()
        self.backend.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, event: RunEvent) -> Commit | None:
        """Queue one event for storing; return the commit to wait for (None: not stored).

        Transient events are not stored (OUTPUT holds the streamed text, TOOL_CALL the tool call).
        Appending an event id that is already stored does nothing, so a retry cannot duplicate.
        """
        if event.kind in TRANSIENT_KINDS:
            return None
        return self._writer.submit(event)

    def append(self, event: RunEvent) -> None:
        """Store one event; it is committed when this returns (blocks the calling thread)."""
        if (commit := self.submit(event)) is not None:
            commit.wait()

    async def aappend(self, event: RunEvent) -> None:
        """Store one event; it is committed when this returns (the loop runs meanwhile)."""
        if (commit := self.submit(event)) is not None:
            await committed([commit])

    @property
    def writing(self) -> bool:
        """Whether the writer thread is alive (it ends a moment after the last append)."""
        return self._writer.running

    def _store_batch(self, events: list[RunEvent]) -> None:
        """The writer thread: redact and store a batch of events in one transaction."""
        self.backend.write([redact_event(e) for e in events])

    def _settle(self) -> None:
        """Wait for the events submitted so far, so a read sees them (read your own writes)."""
        self._writer.wait_written()

    def recover_interrupted(self) -> list[str]:
        """Close, as INTERRUPTED, the open runs whose process is gone; return their run ids.

        A run is open when it has a STARTED event and no closing event; its process is the pid in
        the STARTED event's data. Runs whose process still lives (or that name no pid) stay open.
        The check and the append are one transaction, so processes recovering at once cannot
        close a run twice.
        """
        self._settle()
        return self.backend.recover(_close_if_gone)

    def query(
        self,
        *,
        run_id: str | None = None,
        agent: str | None = None,
        since: float | None = None,
        kinds: Iterable[EventKind] | None = None,
        limit: int | None = None,
        descendants: bool = False,
    ) -> list[RunEvent]:
        """Events matching every filter given, ordered by time, then insertion.

        With `limit`, the latest `limit` matching events (still in chronological order). With
        `descendants`, `run_id` also matches every run delegated from it, at any depth.
        """
        return [
            RunEvent.model_validate_json(raw)
            for raw in self._select_json(run_id, agent, since, kinds, limit, descendants)
        ]

    def prune(self, *, before: float) -> int:
        """Remove every event older than `before` (epoch seconds); return how many were removed.

        Whole runs go together: a run is removed when its latest event is older than `before`, so
        no trail is left without its start or its end. Open runs (no closing event) stay.
        """
        self._settle()
        return self.backend.prune(before)

    def runs(
        self,
        *,
        run_id: str | None = None,
        agent: str | None = None,
        since: float | None = None,
        kinds: Iterable[EventKind] | None = None,
        limit: int | None = None,
        descendants: bool = False,
    ) -> list[RunEvent]:
        """Closing events only: one per finished, failed, cancelled, budget-stopped or lost run."""
        closing = set(TERMINAL_KINDS) if kinds is None else set(kinds) & TERMINAL_KINDS
        if not closing:
            return []
        return self.query(
            run_id=run_id,
            agent=agent,
            since=since,
            kinds=closing,
            limit=limit,
            descendants=descendants,
        )

    def totals_by_agent(self, since: float | None = None) -> dict[str, Usage]:
        """Tokens used per agent, top-level and child runs alike, each model call counted once.

        A run contributes the `call_usage` of its MODEL_CALL events; a run that recorded none
        contributes its closing event's usage. Counting calls rather than closing totals keeps a
        parent whose usage rolls up its children's from counting the children a second time.
        """
        self._settle()
        rows = self.backend.usage_rows((EventKind.MODEL_CALL.value, *TERMINAL_VALUES), since)
        calls: dict[str, tuple[str, Usage]] = {}
        closings: dict[str, tuple[str, Usage]] = {}
        for run_id, agent, kind, call_usage, closing_usage in rows:
            if kind == EventKind.MODEL_CALL.value:
                if call_usage is not None:
                    prev = calls.get(run_id, (agent, Usage()))[1]
                    calls[run_id] = (agent, prev + Usage.model_validate_json(call_usage))
            elif closing_usage is not None:
                closings[run_id] = (agent, Usage.model_validate_json(closing_usage))
        counted = list(calls.values()) + [v for k, v in closings.items() if k not in calls]
        totals: dict[str, Usage] = {}
        for agent, usage in counted:
            totals[agent] = totals.get(agent, Usage()) + usage
        return dict(sorted(totals.items()))

    def run_ids(self, prefix: str) -> list[str]:
        """Run ids starting with `prefix` (what a user copies from a table), newest first."""
        self._settle()
        return self.backend.run_ids(prefix)

    def export_jsonl(
        self,
        out: TextIO,
        *,
        run_id: str | None = None,
        agent: str | None = None,
        since: float | None = None,
        kinds: Iterable[EventKind] | None = None,
        limit: int | None = None,
        descendants: bool = False,
    ) -> int:
        """Write the matching events to `out`, one JSON object a line; return how many."""
        count = 0
        for raw in self._select_json(run_id, agent, since, kinds, limit, descendants):
            out.write(raw)
            out.write("\n")
            count += 1
        return count

    def select(self, query: EventQuery) -> list[RunEvent]:
        """The events `query` matches (who and where included: `EventQuery.user/workspace`)."""
        self._settle()
        return [RunEvent.model_validate_json(raw) for raw in self.backend.select_json(query)]

    def write_jsonl(self, out: TextIO, query: EventQuery) -> int:
        """`export_jsonl` for an EventQuery."""
        self._settle()
        rows = self.backend.select_json(query)
        for raw in rows:
            out.write(raw)
            out.write("\n")
        return len(rows)

    def settle(self) -> None:
        """Wait for the events submitted so far (a read then sees them)."""
        self._settle()

    def _select_json(
        self,
        run_id: str | None,
        agent: str | None,
        since: float | None,
        kinds: Iterable[EventKind] | None,
        limit: int | None,
        descendants: bool = False,
    ) -> list[str]:
        kind_values = None if kinds is None else tuple(sorted({EventKind(k).value for k in kinds}))
        query = EventQuery(run_id, agent, since, kind_values, limit, descendants)
        self._settle()
        return self.backend.select_json(query)


def _close_if_gone(started: RunEvent, events: list[RunEvent]) -> RunEvent | None:
    """The INTERRUPTED closing event of a run whose process is gone; None while it lives (or when
    the run names no process)."""
    pid = started.data.get("pid")
    if not isinstance(pid, int) or process_alive(pid, started_by=started.time):
        return None
    return _interrupted(started, events, pid)


def _interrupted(started: RunEvent, events: list[RunEvent], pid: int) -> RunEvent:
    """The closing event for a run whose process died: its last known usage and artifacts."""
    last = events[-1] if events else started
    artifacts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for ev in events:
        for art in ev.artifacts:
            key = json.dumps(art, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                artifacts.append(art)
    return RunEvent(
        # Derived from the run id, so a second recovery of the same run is a no-op insert.
        event_id=uuid.uuid5(_INTERRUPTED_NS, started.run_id).hex,
        time=time.time(),
        run_id=started.run_id,
        parent_run_id=started.parent_run_id,
        depth=started.depth,
        agent=started.agent,
        goal=started.goal,
        kind=EventKind.INTERRUPTED,
        status=RunStatus.INTERRUPTED,
        usage=last.usage,
        duration_ms=max(0.0, (last.time - started.time) * 1000.0),
        artifacts=artifacts,
        error=(
            f"interrupted: the process running it (pid {pid}) ended without closing the run; "
            f"last recorded step: {last.kind.value}"
        ),
        data={"pid": pid, "recovered_by_pid": os.getpid(), "last_event_id": last.event_id},
        user=started.user,
        workspace=started.workspace,
        front_end=started.front_end,
    )
