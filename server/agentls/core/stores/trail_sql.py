"""The audit trail's statements, written once for both backends.

stores/sqlite_audit.py and stores/pg_audit.py run the same queries; each gives a `Dialect`, the
few pieces in which their SQL differs (placeholders, lists, JSON fields, the tie-breaking
column), and runs what is built here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentls.core.events import EventKind
from agentls.core.stores.trail import TERMINAL_VALUES, EventQuery, user_forms, workspace_forms

# Rows one INSERT carries at most: 14 parameters a row at most, well under SQLite's 32,766 and
# PostgreSQL's 65,535 parameters a statement.
ROWS_PER_INSERT = 500

_USAGE_PARTS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends' SQL."""

    table: str  # the events table
    mark: str  # a parameter's placeholder
    columns: str  # the columns an event row fills, in the order of its values
    insert: str  # the INSERT's head: how an event id already stored is skipped ...
    on_conflict: str  # ... and its tail
    order: str  # the column that orders events of the same time: insertion
    user: str  # the recorded user, as filters compare it
    workspace: str  # the recorded workspace, as filters compare it
    # A spend report's groups (core/spend.py), read from a model call's row.
    spend_keys: Mapping[str, str]
    # A model call's JSON field (a dotted path) as a number, whole or not, in a spend report.
    number: Callable[[str, bool], str]
    # The JSON fields a usage row reads (a dotted path), as JSON text.
    json_field: Callable[[str], str]
    # The rows of a spend report, from the events matching a condition (a model call since).
    spend_source: Callable[[str], str]
    arrays: bool  # a list of values goes as one array parameter (else one parameter each)
    prefix: str  # `{value}` starts with the parameter after `{n}` characters' parameter
    suffix: str  # `{value}` ends with it
    false: str

    def one_of(self, column: str, values: Sequence[str], params: list[Any]) -> str:
        if self.arrays:
            params.append(list(values))
            return f"{column} = ANY ({self.mark})"
        params.extend(values)
        return f"{column} IN ({', '.join([self.mark] * len(values))})"

    def tree(self) -> str:
        """The run ids of a run and every run below it (child agentls runs name their parent)."""
        return (
            f"run_id IN (WITH RECURSIVE tree(id) AS (SELECT {self.mark} UNION "
            f"SELECT e.run_id FROM {self.table} e JOIN tree t ON e.parent_run_id = t.id) "
            "SELECT id FROM tree)"
        )


def insert(d: Dialect, n: int = 1) -> str:
    """The statement that stores `n` event rows, each skipping an event id already stored."""
    width = d.columns.count(",") + 1
    return _insert(d.insert, d.table, d.columns, d.mark, width, n, d.on_conflict)


def inserts(d: Dialect, rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """The statements that store `rows`: one for every ROWS_PER_INSERT rows, since on SQLite
    every statement leaves and retakes the GIL. (On PostgreSQL, `executemany` of `insert(d)`
    costs the client less: psycopg parses a statement once only up to 50 parameters.)"""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        yield insert(d, len(chunk)), [v for r in chunk for v in r]


@functools.lru_cache(maxsize=64)
def _insert(head: str, table: str, columns: str, mark: str, width: int, n: int, tail: str) -> str:
    values = "(" + ", ".join([mark] * width) + ")"
    return f"{head} {table} ({columns}) VALUES {', '.join([values] * n)}{tail}"


def matches(
    d: Dialect,
    value: str,
    exact: list[str],
    params: list[Any],
    *,
    starts: Sequence[str] = (),
    ends: Sequence[str] = (),
) -> str:
    """`value` is one of `exact`, or starts with one of `starts`, or ends with one of `ends`:
    compared as text, case and all (LIKE would ignore case on SQLite and need escapes)."""
    terms = [d.one_of(value, exact, params)] if exact else []
    for text, shape in [(t, d.prefix) for t in starts] + [(t, d.suffix) for t in ends]:
        terms.append(shape.format(value=value, n=d.mark) + f" = {d.mark}")
        params.extend((len(text), text))
    return "(" + " OR ".join(terms) + ")" if terms else d.false


def select_json(d: Dialect, query: EventQuery) -> tuple[str, list[Any]] | None:
    """The statement that answers `query` (None: nothing can match)."""
    where: list[str] = []
    params: list[Any] = []
    if query.run_id is not None:
        where.append(d.tree() if query.descendants else f"run_id = {d.mark}")
        params.append(query.run_id)
    if query.agent is not None:
        where.append(f"agent = {d.mark}")
        params.append(query.agent)
    if query.since is not None:
        where.append(f"time >= {d.mark}")
        params.append(query.since)
    if query.kinds is not None:
        if not query.kinds:
            return None
        where.append(d.one_of("kind", query.kinds, params))
    if query.user is not None:
        exact, prefixes = user_forms(query.user)
        where.append(matches(d, d.user, exact, params, starts=prefixes))
    if query.workspace is not None:
        exact, suffixes = workspace_forms(query.workspace)
        where.append(matches(d, d.workspace, exact, params, ends=suffixes))
    sql = f"SELECT json FROM {d.table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if query.limit is not None:
        if query.limit <= 0:
            return None
        # The latest `limit`, newest first: the caller turns them around.
        sql += f" ORDER BY time DESC, {d.order} DESC LIMIT {d.mark}"
        params.append(query.limit)
    else:
        sql += f" ORDER BY time, {d.order}"
    return sql, params


def usage_rows(d: Dialect, kinds: Sequence[str], since: float | None) -> tuple[str, list[Any]]:
    params: list[Any] = []
    sql = (
        f"SELECT run_id, agent, kind, {d.json_field('data.call_usage')}, {d.json_field('usage')} "
        f"FROM {d.table} WHERE {d.one_of('kind', kinds, params)}"
    )
    if since is not None:
        sql += f" AND time >= {d.mark}"
        params.append(since)
    return sql + f" ORDER BY time, {d.order}", params


def spend(d: Dialect, by: str, since: float | None) -> tuple[str, str, list[Any]]:
    """(the statement grouped by `by`, the one for all, their parameters)."""
    usage = ", ".join(
        f"COALESCE(SUM({d.number('data.call_usage.' + part, True)}), 0)" for part in _USAGE_PARTS
    )
    cost = d.number("data.cost_usd", False)
    source = d.spend_source(f"kind = {d.mark} AND time >= {d.mark}")
    columns = (
        f"COUNT(DISTINCT run_id), COUNT(*), {usage}, COALESCE(SUM({cost}), 0), "
        f"COALESCE(SUM(CASE WHEN {cost} IS NULL THEN 1 ELSE 0 END), 0) FROM {source}"
    )
    grouped = f"SELECT {d.spend_keys[by]} AS k, {columns} GROUP BY k"
    return grouped, f"SELECT NULL, {columns}", [EventKind.MODEL_CALL.value, since or 0.0]


def run_ids(d: Dialect, prefix: str) -> tuple[str, list[Any]]:
    """Run ids starting with `prefix`, newest first."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return (
        f"SELECT run_id FROM {d.table} WHERE run_id LIKE {d.mark} ESCAPE '\\' "
        "GROUP BY run_id ORDER BY MAX(time) DESC",
        [pattern],
    )


def prune(d: Dialect, before: float) -> tuple[str, list[Any]]:
    """Remove the events of finished runs whose latest event is older than `before`."""
    params: list[Any] = [before]
    finished = d.one_of("kind", TERMINAL_VALUES, params)
    return (
        f"DELETE FROM {d.table} WHERE run_id IN (SELECT run_id FROM {d.table} GROUP BY run_id "
        f"HAVING MAX(time) < {d.mark} AND MAX(CASE WHEN {finished} THEN 1 ELSE 0 END) = 1)",
        params,
    )


def open_runs(d: Dialect, *, where: str = "", params: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """The STARTED events of runs without a closing event (and matching `where` on `s`)."""
    args: list[Any] = [EventKind.STARTED.value, *params]
    closed = d.one_of("t.kind", TERMINAL_VALUES, args)
    return (
        f"SELECT s.json FROM {d.table} s WHERE s.kind = {d.mark}{where} AND NOT EXISTS ("
        f"SELECT 1 FROM {d.table} t WHERE t.run_id = s.run_id AND {closed})",
        args,
    )


def run_events(d: Dialect) -> str:
    """A run's events in the order they happened (one parameter: the run id)."""
    return f"SELECT json FROM {d.table} WHERE run_id = {d.mark} ORDER BY time, {d.order}"


__all__ = [
    "ROWS_PER_INSERT",
    "Dialect",
    "insert",
    "inserts",
    "matches",
    "open_runs",
    "prune",
    "run_events",
    "run_ids",
    "select_json",
    "spend",
    "usage_rows",
]
