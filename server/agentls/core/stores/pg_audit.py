"""The audit trail in a team's PostgreSQL database: one trail for every machine of the team.

Each row also says who and where (user, host, workspace): members append and read, and the
database refuses them UPDATE and DELETE (stores/pg_schema.py), so nobody erases the team's trail
from a laptop. Appends are idempotent on the event id.

When the database is away, a batch of events goes to the workspace's `audit.journal` in the user's
state folder (stores/journal.py) instead, durable before the writer reports it stored, and is
written, once, before anything else when it is back.
Recovery of interrupted runs looks only at runs started in this pid space (this machine or
container): elsewhere a process id means nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentls.core.events import EventKind, RunEvent
from agentls.core.stores.identity import Origin, origin
from agentls.core.stores.journal import SUFFIX, Journal, journal_path
from agentls.core.stores.pg_schema import check_version
from agentls.core.stores.postgres import SCHEMA, DatabaseUnavailable, Session, database_error
from agentls.core.stores.trail import (
    TERMINAL_VALUES,
    CloseRun,
    EventQuery,
    SpendRow,
    UsageRow,
    user_forms,
    workspace_forms,
)

log = logging.getLogger("agentls.core.audit")

JOURNAL = "audit" + SUFFIX

_COLUMNS = (
    "event_id, time, run_id, parent_run_id, depth, agent, kind, status, json, "
    '"user", host, pid_space, workspace, front_end'
)
_INSERT = (
    f"INSERT INTO {SCHEMA}.events ({_COLUMNS}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"
)
_TREE = (
    "run_id IN (WITH RECURSIVE tree(id) AS (SELECT %s::text UNION "
    f"SELECT e.run_id FROM {SCHEMA}.events e JOIN tree t ON e.parent_run_id = t.id) "
    "SELECT id FROM tree)"
)
# Recovery of interrupted runs: one at a time per database.
_RECOVER_LOCK = 0x6167_656E_746C_7303


def _row(event: RunEvent, o: Origin) -> tuple[Any, ...]:
    # Who and where as the event says (core/who.py), else as this process knows it.
    return (
        event.event_id, event.time, event.run_id, event.parent_run_id, event.depth, event.agent,
        event.kind.value, event.status.value, event.model_dump_json(), event.user or o.user,
        o.host, o.pid_space, event.workspace or o.workspace, event.front_end or o.front_end,
    )  # fmt: skip


# What each spend report groups by (core/spend.py); `j` is the event's JSON.
_SPEND_KEYS = {
    "user": "COALESCE(j ->> 'user', \"user\")",
    "agent": "agent",
    "model": "COALESCE(j -> 'data' ->> 'model', j -> 'data' ->> 'request_model')",
    "workspace": "COALESCE(j ->> 'workspace', workspace)",
    "day": "to_char(to_timestamp(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def _matches(
    value: str,
    exact: list[str],
    params: list[Any],
    *,
    starts: Sequence[str] = (),
    ends: Sequence[str] = (),
) -> str:
    """As stores/sqlite_audit.py's: exact, by prefix or by suffix, case and all."""
    terms = []
    if exact:
        terms.append(f"{value} = ANY (%s)")
        params.append(list(exact))
    for text in starts:
        terms.append(f"left({value}, %s) = %s")
        params.extend((len(text), text))
    for text in ends:
        terms.append(f"right({value}, %s) = %s")
        params.extend((len(text), text))
    return "(" + " OR ".join(terms) + ")" if terms else "false"


class PgAudit:
    """Events in the team database; a journal in `state` for when it is away."""

    path: Path | None = None
    shared = True

    def __init__(
        self,
        url: str,
        *,
        state: Path | None = None,
        workspace: Path | None = None,
        synchronous: str = "NORMAL",
    ) -> None:
        """`synchronous` as for the SQLite trail: NORMAL (the default) survives a crash of any
        agentls process, and may lose the last fraction of a second of events if the database
        server itself crashes (its commit does not wait for the disk); FULL waits for the disk."""
        self.url = url
        self.wait_for_disk = synchronous.upper() in ("FULL", "EXTRA")
        self.session = Session(url)
        self.where = self.session.where
        self.origin = origin(workspace)
        self.journal = Journal(journal_path(state, JOURNAL)) if state is not None else None
        with self.session.transaction() as conn:
            check_version(url, conn)
        self._replay()

    def close(self) -> None:
        self.session.close()

    def write(self, events: list[RunEvent]) -> None:
        rows = [_row(e, self.origin) for e in events]
        try:
            self._replay()
            with self.session.transaction(doing="append audit events") as conn:
                conn.cursor().executemany(_INSERT, rows)
                if not self.wait_for_disk:
                    conn.execute("SET LOCAL synchronous_commit = off")
        except DatabaseUnavailable:
            if self.journal is None:
                raise
            self.journal.append([{"row": list(r)} for r in rows])
            log.warning(
                "%s is away: %d audit event(s) kept in %s until it is back",
                self.where,
                len(rows),
                self.journal.path,
            )

    def _replay(self) -> None:
        if self.journal is None or not self.journal.pending():
            return

        def apply(entries: list[dict[str, Any]]) -> None:
            with self.session.transaction(doing="append audit events") as conn:
                conn.cursor().executemany(_INSERT, [tuple(e["row"]) for e in entries])

        if count := self.journal.replay(apply):
            log.warning("wrote %d audit event(s) kept while %s was away", count, self.where)

    def _fresh(self) -> Any:
        self._replay()
        return self.session.transaction()

    def recover(self, close: CloseRun) -> list[str]:
        recovered: list[str] = []
        self._replay()
        with self.session.transaction(doing="append audit events") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RECOVER_LOCK,))
            open_runs = conn.execute(
                f"SELECT s.json FROM {SCHEMA}.events s WHERE s.kind = %s AND s.pid_space = %s "
                f"AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.events t WHERE t.run_id = s.run_id "
                "AND t.kind = ANY (%s))",
                (EventKind.STARTED.value, self.origin.pid_space, list(TERMINAL_VALUES)),
            ).fetchall()
            for (raw,) in open_runs:
                started = RunEvent.model_validate_json(raw)
                events = [
                    RunEvent.model_validate_json(r[0])
                    for r in conn.execute(
                        f"SELECT json FROM {SCHEMA}.events WHERE run_id = %s ORDER BY time, seq",
                        (started.run_id,),
                    )
                ]
                closing = close(started, events)
                if closing is not None:
                    conn.execute(_INSERT, _row(closing, self.origin))
                    recovered.append(started.run_id)
        return recovered

    def prune(self, before: float) -> int:
        import psycopg

        with self._fresh() as conn:
            try:
                with conn.pipeline():  # its end reads the outcome, so a refusal is raised here
                    cursor = conn.execute(
                        f"DELETE FROM {SCHEMA}.events WHERE run_id IN (SELECT run_id FROM "
                        f"{SCHEMA}.events GROUP BY run_id HAVING max(time) < %s "
                        "AND bool_or(kind = ANY (%s)))",
                        (before, list(TERMINAL_VALUES)),
                    )
            except psycopg.errors.InsufficientPrivilege as exc:
                raise database_error(self.url, exc, doing="delete audit events") from None
            return int(cursor.rowcount)

    def usage_rows(self, kinds: tuple[str, ...], since: float | None) -> list[UsageRow]:
        sql = (
            "SELECT run_id, agent, kind, json::jsonb -> 'data' ->> 'call_usage', "
            f"json::jsonb ->> 'usage' FROM {SCHEMA}.events WHERE kind = ANY (%s)"
        )
        params: list[Any] = [list(kinds)]
        if since is not None:
            sql += " AND time >= %s"
            params.append(since)
        with self._fresh() as conn:
            return [tuple(r) for r in conn.execute(sql + " ORDER BY time, seq", params)]

    def spend_rows(self, by: str, since: float | None) -> list[SpendRow]:
        call = "j -> 'data' -> 'call_usage'"
        usage = ", ".join(
            f"COALESCE(sum(({call} ->> '{part}')::bigint), 0)"
            for part in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")
        )
        columns = (
            f"count(DISTINCT run_id), count(*), {usage}, "
            "COALESCE(sum((j -> 'data' ->> 'cost_usd')::double precision), 0), "
            "count(*) FILTER (WHERE (j -> 'data' ->> 'cost_usd') IS NULL) "
            f"FROM (SELECT *, json::jsonb AS j FROM {SCHEMA}.events "
            "WHERE kind = %s AND time >= %s) calls"
        )
        params = (EventKind.MODEL_CALL.value, since or 0.0)
        with self._fresh() as conn:
            rows = [
                tuple(r)
                for r in conn.execute(
                    f"SELECT {_SPEND_KEYS[by]} AS k, {columns} GROUP BY k", params
                )
            ]
            rows.append(tuple(conn.execute(f"SELECT NULL, {columns}", params).fetchone()))
        return rows

    def run_ids(self, prefix: str) -> list[str]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._fresh() as conn:
            rows = conn.execute(
                f"SELECT run_id FROM {SCHEMA}.events WHERE run_id LIKE %s "
                "GROUP BY run_id ORDER BY max(time) DESC",
                (pattern,),
            ).fetchall()
        return [r[0] for r in rows]

    def select_json(self, query: EventQuery) -> list[str]:
        where: list[str] = []
        params: list[Any] = []
        if query.run_id is not None:
            where.append(_TREE if query.descendants else "run_id = %s")
            params.append(query.run_id)
        if query.agent is not None:
            where.append("agent = %s")
            params.append(query.agent)
        if query.since is not None:
            where.append("time >= %s")
            params.append(query.since)
        if query.kinds is not None:
            if not query.kinds:
                return []
            where.append("kind = ANY (%s)")
            params.append(list(query.kinds))
        if query.user is not None:
            exact, prefixes = user_forms(query.user)
            where.append(_matches('"user"', exact, params, starts=prefixes))
        if query.workspace is not None:
            exact, suffixes = workspace_forms(query.workspace)
            where.append(_matches("workspace", exact, params, ends=suffixes))
        sql = f"SELECT json FROM {SCHEMA}.events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if query.limit is not None:
            if query.limit <= 0:
                return []
            sql += " ORDER BY time DESC, seq DESC LIMIT %s"
            params.append(query.limit)
        else:
            sql += " ORDER BY time, seq"
        with self._fresh() as conn:
            rows = [r[0] for r in conn.execute(sql, params)]
        if query.limit is not None:
            rows.reverse()
        return rows
