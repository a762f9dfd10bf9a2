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
from pathlib import Path
from typing import Any

from agentls.core.events import RunEvent
from agentls.core.stores import trail_sql as q
from agentls.core.stores.identity import Origin, origin
from agentls.core.stores.journal import SUFFIX, Journal, journal_path
from agentls.core.stores.pg_schema import check_version
from agentls.core.stores.postgres import SCHEMA, DatabaseUnavailable, Session, database_error
from agentls.core.stores.trail import CloseRun, EventQuery, SpendRow, UsageRow

log = logging.getLogger("agentls.core.audit")

JOURNAL = "audit" + SUFFIX

_COLUMNS = (
    "event_id, time, run_id, parent_run_id, depth, agent, kind, status, json, "
    '"user", host, pid_space, workspace, front_end'
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


def _json(path: str, of: str = "j") -> str:
    """A JSON field (a dotted path) of the event as text; `j` is its JSON in a spend report."""
    return f"{of} #>> '{{{path.replace('.', ',')}}}'"


DIALECT = q.Dialect(
    table=f"{SCHEMA}.events",
    mark="%s",
    columns=_COLUMNS,
    insert="INSERT INTO",
    on_conflict=" ON CONFLICT (event_id) DO NOTHING",
    order="seq",
    user='"user"',
    workspace="workspace",
    spend_keys={
        "user": f'COALESCE({_json("user")}, "user")',
        "agent": "agent",
        "model": f"COALESCE({_json('data.model')}, {_json('data.request_model')})",
        "workspace": f"COALESCE({_json('workspace')}, workspace)",
        "day": "to_char(to_timestamp(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    },
    number=lambda path, whole: f"({_json(path)})::{'bigint' if whole else 'double precision'}",
    json_field=lambda path: _json(path, "json::jsonb"),
    spend_source=lambda where: f"(SELECT *, json::jsonb AS j FROM {SCHEMA}.events WHERE {where}) c",
    arrays=True,
    prefix="left({value}, {n})",
    suffix="right({value}, {n})",
    false="false",
)


def _insert(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    conn.cursor().executemany(q.insert(DIALECT), rows)


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
                _insert(conn, rows)
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
                _insert(conn, [tuple(e["row"]) for e in entries])

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
            sql, params = q.open_runs(
                DIALECT, where=" AND s.pid_space = %s", params=[self.origin.pid_space]
            )
            for (raw,) in conn.execute(sql, params).fetchall():
                started = RunEvent.model_validate_json(raw)
                events = [
                    RunEvent.model_validate_json(r[0])
                    for r in conn.execute(q.run_events(DIALECT), (started.run_id,))
                ]
                closing = close(started, events)
                if closing is not None:
                    _insert(conn, [_row(closing, self.origin)])
                    recovered.append(started.run_id)
        return recovered

    def prune(self, before: float) -> int:
        import psycopg

        with self._fresh() as conn:
            try:
                with conn.pipeline():  # its end reads the outcome, so a refusal is raised here
                    cursor = conn.execute(*q.prune(DIALECT, before))
            except psycopg.errors.InsufficientPrivilege as exc:
                raise database_error(self.url, exc, doing="delete audit events") from None
            return int(cursor.rowcount)

    def usage_rows(self, kinds: tuple[str, ...], since: float | None) -> list[UsageRow]:
        with self._fresh() as conn:
            return [tuple(r) for r in conn.execute(*q.usage_rows(DIALECT, kinds, since))]

    def spend_rows(self, by: str, since: float | None) -> list[SpendRow]:
        grouped, whole, params = q.spend(DIALECT, by, since)
        with self._fresh() as conn:
            rows = [tuple(r) for r in conn.execute(grouped, params)]
            rows.append(tuple(conn.execute(whole, params).fetchone()))
        return rows

    def run_ids(self, prefix: str) -> list[str]:
        with self._fresh() as conn:
            return [r[0] for r in conn.execute(*q.run_ids(DIALECT, prefix)).fetchall()]

    def select_json(self, query: EventQuery) -> list[str]:
        built = q.select_json(DIALECT, query)
        if built is None:
            return []
        with self._fresh() as conn:
            rows = [r[0] for r in conn.execute(*built)]
        if query.limit is not None:
            rows.reverse()
        return rows
