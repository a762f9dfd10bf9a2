"""The durable audit trail: every run event, appended to `<workspace>/.agentls/audit.db`.

Events are redacted (core/redact.py) and stored one row each: indexed columns for the fields that
queries filter on, plus the full event JSON, so reading gives back equal RunEvents. SQLite in WAL
mode lets the language server and child agentls processes append to one store at once.

Appends are group-committed (core/group_commit.py): `submit` queues an event and returns the
`Commit` of the batch it joined; a writer thread redacts and stores each batch in one transaction,
so concurrent runs share commits and the event loop never waits for SQLite. An event is durable
once its commit has ended: `append` (blocking) and `aappend` (awaited) return only then, and
raise what made the batch fail. The runtime submits each event as it happens and awaits its
run's commits before every step that acts (core/runtime.py), so a `kill -9` loses at most the
events of the step in progress. Runs whose process died without a closing event are closed as
INTERRUPTED by `recover_interrupted()`, which callers run at start-up. `export_jsonl` writes the
same events as JSON Lines.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable
from functools import lru_cache
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
from agentls.core.sqlite import SqliteFile, process_alive, state_dir
from agentls.core.state_check import error_from_sqlite

AUDIT_FILE = "audit.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id      TEXT PRIMARY KEY,
    time          REAL NOT NULL,
    run_id        TEXT NOT NULL,
    parent_run_id TEXT,
    depth         INTEGER NOT NULL,
    agent         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    json          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, kind);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE INDEX IF NOT EXISTS events_by_agent ON events (agent, time);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, time);
CREATE INDEX IF NOT EXISTS events_by_parent ON events (parent_run_id);
"""

# The run ids of a run and every run below it (child agentls runs name their parent).
_TREE = (
    "run_id IN (WITH RECURSIVE tree(id) AS (SELECT ? UNION "
    "SELECT e.run_id FROM events e JOIN tree t ON e.parent_run_id = t.id) SELECT id FROM tree)"
)

_INSERT = (
    "INSERT OR IGNORE INTO events "
    "(event_id, time, run_id, parent_run_id, depth, agent, kind, status, json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# 9 parameters a row, well under SQLite's 32,766 parameters a statement.
_ROWS_PER_INSERT = 500


@lru_cache(maxsize=64)
def _insert_rows(n: int) -> str:
    return _INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?, ?)" * (n - 1)


_TERMINAL_VALUES = tuple(sorted(k.value for k in TERMINAL_KINDS))
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

    def __init__(self, path: Path | None = None, *, synchronous: str = "NORMAL") -> None:
        """`path=None` keeps events in memory (tests).

        With WAL, synchronous=NORMAL already survives a crash of any process; FULL also survives
        a power loss, at the price of an fsync per event.
        """
        self.path = path
        self._db = SqliteFile(path, _SCHEMA, synchronous=synchronous)
        name = "memory" if path is None else path.name
        self._writer: GroupCommit[RunEvent] = GroupCommit(
            self._store_batch, name=f"agentls-audit-writer:{name}"
        )

    @classmethod
    def for_workspace(cls, root: Path, *, synchronous: str = "NORMAL") -> AuditStore:
        return cls(state_dir(root) / AUDIT_FILE, synchronous=synchronous)

    def close(self) -> None:
        """Write every event submitted so far, then close the database."""
        self._writer.flush()
        self._db.close()

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
        """The writer thread: redact and insert a batch of events in one transaction."""
        try:
            rows = [_row(redact_event(e)) for e in events]
            with self._db.transaction() as conn:
                # One statement per chunk of rows: each step leaves and retakes the GIL.
                for start in range(0, len(rows), _ROWS_PER_INSERT):
                    chunk = rows[start : start + _ROWS_PER_INSERT]
                    conn.execute(_insert_rows(len(chunk)), [v for row in chunk for v in row])
        except (sqlite3.Error, OSError) as exc:
            # Read-only, disk full, damaged: the runs must stop rather than go on unaudited.
            raise error_from_sqlite(self.path or Path(":memory:"), exc) from exc

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
        recovered: list[str] = []
        self._settle()
        with self._db.transaction() as conn:
            marks = ",".join("?" * len(_TERMINAL_VALUES))
            open_runs = conn.execute(
                "SELECT s.json FROM events s WHERE s.kind = ? AND NOT EXISTS ("
                f"SELECT 1 FROM events t WHERE t.run_id = s.run_id AND t.kind IN ({marks}))",
                (EventKind.STARTED.value, *_TERMINAL_VALUES),
            ).fetchall()
            for (raw,) in open_runs:
                started = RunEvent.model_validate_json(raw)
                pid = started.data.get("pid")
                if not isinstance(pid, int) or process_alive(pid, started_by=started.time):
                    continue
                events = [
                    RunEvent.model_validate_json(r[0])
                    for r in conn.execute(
                        "SELECT json FROM events WHERE run_id = ? ORDER BY time, rowid",
                        (started.run_id,),
                    )
                ]
                closing = _interrupted(started, events, pid)
                conn.execute(_INSERT, _row(closing))
                recovered.append(started.run_id)
        return recovered

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
        marks = ",".join("?" * len(_TERMINAL_VALUES))
        self._settle()
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE run_id IN ("
                "SELECT run_id FROM events GROUP BY run_id HAVING MAX(time) < ? "
                f"AND SUM(kind IN ({marks})) > 0)",
                (before, *_TERMINAL_VALUES),
            )
            return cursor.rowcount

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
        kinds = (EventKind.MODEL_CALL.value, *_TERMINAL_VALUES)
        sql = (
            "SELECT run_id, agent, kind, json_extract(json, '$.data.call_usage'), "
            "json_extract(json, '$.usage') FROM events "
            f"WHERE kind IN ({','.join('?' * len(kinds))})"
        )
        params: list[Any] = list(kinds)
        if since is not None:
            sql += " AND time >= ?"
            params.append(since)
        self._settle()
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(sql + " ORDER BY time, rowid", params).fetchall()
        calls: dict[str, tuple[str, Usage]] = {}
        closings: dict[str, tuple[str, Usage]] = {}
        for run_id, agent, kind, call_usage, usage in rows:
            if kind == EventKind.MODEL_CALL.value:
                if call_usage is not None:
                    prev = calls.get(run_id, (agent, Usage()))[1]
                    calls[run_id] = (agent, prev + Usage.model_validate_json(call_usage))
            elif usage is not None:
                closings[run_id] = (agent, Usage.model_validate_json(usage))
        counted = list(calls.values()) + [v for k, v in closings.items() if k not in calls]
        totals: dict[str, Usage] = {}
        for agent, usage in counted:
            totals[agent] = totals.get(agent, Usage()) + usage
        return dict(sorted(totals.items()))

    def run_ids(self, prefix: str) -> list[str]:
        """Run ids starting with `prefix` (what a user copies from a table), newest first."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        self._settle()
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT run_id, MAX(time) AS t FROM events WHERE run_id LIKE ? ESCAPE '\\' "
                "GROUP BY run_id ORDER BY t DESC",
                (pattern,),
            ).fetchall()
        return [r[0] for r in rows]

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

    def _select_json(
        self,
        run_id: str | None,
        agent: str | None,
        since: float | None,
        kinds: Iterable[EventKind] | None,
        limit: int | None,
        descendants: bool = False,
    ) -> list[str]:
        where: list[str] = []
        params: list[Any] = []
        if run_id is not None:
            where.append(_TREE if descendants else "run_id = ?")
            params.append(run_id)
        if agent is not None:
            where.append("agent = ?")
            params.append(agent)
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if kinds is not None:
            values = sorted({EventKind(k).value for k in kinds})
            if not values:
                return []
            where.append(f"kind IN ({','.join('?' * len(values))})")
            params.extend(values)
        sql = "SELECT json FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is not None:
            if limit <= 0:
                return []
            sql += " ORDER BY time DESC, rowid DESC LIMIT ?"
            params.append(limit)
        else:
            sql += " ORDER BY time, rowid"
        self._settle()
        with self._db.transaction(write=False) as conn:
            rows = [r[0] for r in conn.execute(sql, params)]
        if limit is not None:
            rows.reverse()
        return rows


def _row(event: RunEvent) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.time,
        event.run_id,
        event.parent_run_id,
        event.depth,
        event.agent,
        event.kind.value,
        event.status.value,
        event.model_dump_json(),
    )


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
