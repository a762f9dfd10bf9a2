"""The audit trail in an SQLite file: `<workspace>/.agentls/audit.db` (WAL), or in memory.

WAL mode lets the language server and child agentls processes append to one file at once. A file
that cannot be written (read-only, disk full, damaged) raises StateError naming it: runs stop
rather than go on unaudited.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentls.core.events import EventKind, RunEvent
from agentls.core.sqlite import SqliteFile
from agentls.core.state_check import error_from_sqlite
from agentls.core.stores.trail import (
    TERMINAL_VALUES,
    CloseRun,
    EventQuery,
    SpendRow,
    UsageRow,
    user_forms,
    workspace_forms,
)

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


# What each spend report groups by, read from an event row (core/spend.py).
_SPEND_KEYS = {
    "user": "json_extract(json, '$.user')",
    "agent": "agent",
    # The model as the provider answered, else as it was asked for.
    "model": "COALESCE(json_extract(json, '$.data.model'), "
    "json_extract(json, '$.data.request_model'))",
    "workspace": "json_extract(json, '$.workspace')",
    "day": "date(time, 'unixepoch')",
}


def _matches(
    value: str,
    exact: list[str],
    params: list[Any],
    *,
    starts: Sequence[str] = (),
    ends: Sequence[str] = (),
) -> str:
    """`value` is one of `exact`, or starts with one of `starts`, or ends with one of `ends`:
    compared as text, case and all (LIKE would ignore case and need escapes)."""
    terms = []
    for text in exact:
        terms.append(f"{value} = ?")
        params.append(text)
    for text in starts:
        terms.append(f"substr({value}, 1, ?) = ?")
        params.extend((len(text), text))
    for text in ends:
        terms.append(f"substr({value}, -?) = ?")
        params.extend((len(text), text))
    return "(" + " OR ".join(terms) + ")" if terms else "0"


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
                for start in range(0, len(rows), _ROWS_PER_INSERT):
                    chunk = rows[start : start + _ROWS_PER_INSERT]
                    conn.execute(_insert_rows(len(chunk)), [v for r in chunk for v in r])
        except (sqlite3.Error, OSError) as exc:
            # Read-only, disk full, damaged: the runs must stop rather than go on unaudited.
            raise error_from_sqlite(self.path or Path(":memory:"), exc) from exc

    def recover(self, close: CloseRun) -> list[str]:
        recovered: list[str] = []
        with self.db.transaction() as conn:
            marks = ",".join("?" * len(TERMINAL_VALUES))
            open_runs = conn.execute(
                "SELECT s.json FROM events s WHERE s.kind = ? AND NOT EXISTS ("
                f"SELECT 1 FROM events t WHERE t.run_id = s.run_id AND t.kind IN ({marks}))",
                (EventKind.STARTED.value, *TERMINAL_VALUES),
            ).fetchall()
            for (raw,) in open_runs:
                started = RunEvent.model_validate_json(raw)
                events = [
                    RunEvent.model_validate_json(r[0])
                    for r in conn.execute(
                        "SELECT json FROM events WHERE run_id = ? ORDER BY time, rowid",
                        (started.run_id,),
                    )
                ]
                closing = close(started, events)
                if closing is not None:
                    conn.execute(_INSERT, row(closing))
                    recovered.append(started.run_id)
        return recovered

    def prune(self, before: float) -> int:
        marks = ",".join("?" * len(TERMINAL_VALUES))
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE run_id IN ("
                "SELECT run_id FROM events GROUP BY run_id HAVING MAX(time) < ? "
                f"AND SUM(kind IN ({marks})) > 0)",
                (before, *TERMINAL_VALUES),
            )
            return cursor.rowcount

    def usage_rows(self, kinds: tuple[str, ...], since: float | None) -> list[UsageRow]:
        sql = (
            "SELECT run_id, agent, kind, json_extract(json, '$.data.call_usage'), "
            "json_extract(json, '$.usage') FROM events "
            f"WHERE kind IN ({','.join('?' * len(kinds))})"
        )
        params: list[Any] = list(kinds)
        if since is not None:
            sql += " AND time >= ?"
            params.append(since)
        with self.db.transaction(write=False) as conn:
            return conn.execute(sql + " ORDER BY time, rowid", params).fetchall()

    def spend_rows(self, by: str, since: float | None) -> list[SpendRow]:
        usage = ", ".join(
            f"COALESCE(SUM(json_extract(json, '$.data.call_usage.{part}')), 0)"
            for part in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")
        )
        columns = (
            f"COUNT(DISTINCT run_id), COUNT(*), {usage}, "
            "COALESCE(SUM(json_extract(json, '$.data.cost_usd')), 0), "
            "COALESCE(SUM(json_extract(json, '$.data.cost_usd') IS NULL), 0) "
            "FROM events WHERE kind = ? AND time >= ?"
        )
        params = (EventKind.MODEL_CALL.value, since or 0.0)
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT {_SPEND_KEYS[by]} AS k, {columns} GROUP BY k", params
            ).fetchall()
            rows.append(conn.execute(f"SELECT NULL, {columns}", params).fetchone())
        return rows

    def run_ids(self, prefix: str) -> list[str]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT run_id, MAX(time) AS t FROM events WHERE run_id LIKE ? ESCAPE '\\' "
                "GROUP BY run_id ORDER BY t DESC",
                (pattern,),
            ).fetchall()
        return [r[0] for r in rows]

    def select_json(self, query: EventQuery) -> list[str]:
        where: list[str] = []
        params: list[Any] = []
        if query.run_id is not None:
            where.append(_TREE if query.descendants else "run_id = ?")
            params.append(query.run_id)
        if query.agent is not None:
            where.append("agent = ?")
            params.append(query.agent)
        if query.since is not None:
            where.append("time >= ?")
            params.append(query.since)
        if query.kinds is not None:
            if not query.kinds:
                return []
            where.append(f"kind IN ({','.join('?' * len(query.kinds))})")
            params.extend(query.kinds)
        if query.user is not None:
            exact, prefixes = user_forms(query.user)
            where.append(_matches("json_extract(json, '$.user')", exact, params, starts=prefixes))
        if query.workspace is not None:
            exact, suffixes = workspace_forms(query.workspace)
            value = "json_extract(json, '$.workspace')"
            where.append(_matches(value, exact, params, ends=suffixes))
        sql = "SELECT json FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if query.limit is not None:
            if query.limit <= 0:
                return []
            sql += " ORDER BY time DESC, rowid DESC LIMIT ?"
            params.append(query.limit)
        else:
            sql += " ORDER BY time, rowid"
        with self.db.transaction(write=False) as conn:
            rows = [r[0] for r in conn.execute(sql, params)]
        if query.limit is not None:
            rows.reverse()
        return rows
