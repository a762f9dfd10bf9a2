"""The audit trail in an SQLite file: `<workspace>/.agentls/audit.db` (WAL), or in memory.

WAL mode lets the language server and child agentls processes append to one file at once. A file
that cannot be written (read-only, disk full, damaged) raises StateError naming it: runs stop
rather than go on unaudited.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from agentls.core.events import RunEvent
from agentls.core.sqlite import SqliteFile
from agentls.core.state_check import error_from_sqlite
from agentls.core.stores import trail_sql as q
from agentls.core.stores.trail import CloseRun, EventQuery, SpendRow, UsageRow

SCHEMA = """
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

_COLUMNS = "event_id, time, run_id, parent_run_id, depth, agent, kind, status, json"


def _json(path: str) -> str:
    return f"json_extract(json, '$.{path}')"


DIALECT = q.Dialect(
    table="events",
    mark="?",
    columns=_COLUMNS,
    insert="INSERT OR IGNORE INTO",
    on_conflict="",
    order="rowid",
    user=_json("user"),
    workspace=_json("workspace"),
    spend_keys={
        "user": _json("user"),
        "agent": "agent",
        # The model as the provider answered, else as it was asked for.
        "model": f"COALESCE({_json('data.model')}, {_json('data.request_model')})",
        "workspace": _json("workspace"),
        "day": "date(time, 'unixepoch')",
    },
    number=lambda path, whole: _json(path),
    json_field=_json,
    spend_source=lambda where: f"events WHERE {where}",
    arrays=False,
    prefix="substr({value}, 1, {n})",
    suffix="substr({value}, -{n})",
    false="0",
)


def row(event: RunEvent) -> tuple[Any, ...]:
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


class SqliteAudit:
    """Events in one SQLite file shared by threads and processes (`path=None`: in memory)."""

    shared = False

    def __init__(self, path: Path | None, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.where = str(path) if path is not None else ":memory:"
        self.db = SqliteFile(path, SCHEMA, synchronous=synchronous)

    def close(self) -> None:
        self.db.close()

    def write(self, events: list[RunEvent]) -> None:
        try:
            rows = [row(e) for e in events]
            with self.db.transaction() as conn:
                # One statement per chunk of rows: each step leaves and retakes the GIL.
                for sql, params in q.inserts(DIALECT, rows):
                    conn.execute(sql, params)
        except (sqlite3.Error, OSError) as exc:
            # Read-only, disk full, damaged: the runs must stop rather than go on unaudited.
            raise error_from_sqlite(self.path or Path(":memory:"), exc) from exc

    def recover(self, close: CloseRun) -> list[str]:
        recovered: list[str] = []
        with self.db.transaction() as conn:
            for (raw,) in conn.execute(*q.open_runs(DIALECT)).fetchall():
                started = RunEvent.model_validate_json(raw)
                events = [
                    RunEvent.model_validate_json(r[0])
                    for r in conn.execute(q.run_events(DIALECT), (started.run_id,))
                ]
                closing = close(started, events)
                if closing is not None:
                    for sql, params in q.inserts(DIALECT, [row(closing)]):
                        conn.execute(sql, params)
                    recovered.append(started.run_id)
        return recovered

    def prune(self, before: float) -> int:
        with self.db.transaction() as conn:
            return conn.execute(*q.prune(DIALECT, before)).rowcount

    def usage_rows(self, kinds: tuple[str, ...], since: float | None) -> list[UsageRow]:
        with self.db.transaction(write=False) as conn:
            return conn.execute(*q.usage_rows(DIALECT, kinds, since)).fetchall()

    def spend_rows(self, by: str, since: float | None) -> list[SpendRow]:
        grouped, whole, params = q.spend(DIALECT, by, since)
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(grouped, params).fetchall()
            rows.append(conn.execute(whole, params).fetchone())
        return rows

    def run_ids(self, prefix: str) -> list[str]:
        with self.db.transaction(write=False) as conn:
            return [r[0] for r in conn.execute(*q.run_ids(DIALECT, prefix)).fetchall()]

    def select_json(self, query: EventQuery) -> list[str]:
        built = q.select_json(DIALECT, query)
        if built is None:
            return []
        with self.db.transaction(write=False) as conn:
            rows = [r[0] for r in conn.execute(*built)]
        if query.limit is not None:
            rows.reverse()
        return rows
