"""Checks of the numbers the budget ledger holds, and their safe repair (`agentls doctor`).

Every limit and count in `ledger.db` is a whole number from 0 to `bounds.MAX_TOKENS`, stored as an
SQLite INTEGER; a cached count is part of its prompt count, so never above it. A value outside
that (a float left by a sum that overflowed 64 bits, text or a negative number written by another
tool) is found here, named by table, column and row.

The repair never makes a budget look less spent or less limited than it may have been: a float
that holds a whole number in range becomes that integer (nothing is lost); any other committed
count becomes `MAX_TOKENS` (what was spent cannot be known, so the scope counts as spent until
`agentls budget reset` starts it over); any other limit becomes 0 (nothing may be spent until it
is set again with `agentls budget set`); a cached count above its prompt count becomes the prompt
count; a reservation whose size is not a count is dropped (no agentls process wrote it). A copy of
the file is kept before anything is changed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agentls.core.bounds import MAX_TOKENS

# (table, key column, column, may be NULL): every number the ledger stores.
_COUNTS = (
    ("scopes", "scope", "lim", True),
    ("scopes", "scope", "input", False),
    ("scopes", "scope", "cached", False),
    ("scopes", "scope", "output", False),
    ("scopes", "scope", "reasoning", False),
    ("scopes", "scope", "estimated", False),
    ("reservations", "id", "tokens", False),
    ("reserved", "res_id", "tokens", False),
)
_SHOWN = 5  # bad values named in a finding; the rest are counted
_KINDS = {"real": "a real number", "text": "text", "blob": "bytes", "null": "empty"}


@dataclass(frozen=True)
class BadValue:
    """One number of the ledger that is not what it must be."""

    table: str
    column: str
    key: str
    value: object
    kind: str  # SQLite's storage class: integer, real, text, blob, null
    above_input: bool = False  # a cached count in range, but above its row's input count

    def describe(self) -> str:
        where = f"table {self.table}, column {self.column}, row {self.key!r}"
        shown = repr(self.value)
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        if self.above_input:
            return f"{where}: {shown} cached tokens, more than the row's input tokens"
        if self.column == "estimated":
            return f"{where}: {shown} ({_KINDS.get(self.kind, self.kind)}), not 0 or 1"
        what = _KINDS.get(self.kind, "a number")
        return f"{where}: {shown} ({what}), not a whole number of tokens from 0 to {MAX_TOKENS:,}"


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def bad_values(conn: sqlite3.Connection) -> list[BadValue]:
    """Every limit, count and reservation size of the ledger that is out of type or range."""
    tables = _tables(conn)
    found: list[BadValue] = []
    for table, key, column, nullable in _COUNTS:
        if table not in tables:
            continue
        top = 1 if column == "estimated" else MAX_TOKENS
        null_ok = f"{column} IS NOT NULL AND " if nullable else ""
        rows = conn.execute(
            f"SELECT {key}, {column}, typeof({column}) FROM {table} WHERE {null_ok}"
            f"(typeof({column}) != 'integer' OR {column} < 0 OR {column} > ?)",
            (top,),
        ).fetchall()
        found += [BadValue(table, column, str(k), v, kind) for k, v, kind in rows]
    if "scopes" in tables:
        rows = conn.execute(
            "SELECT scope, cached FROM scopes WHERE typeof(cached) = 'integer' "
            "AND typeof(input) = 'integer' AND cached > input AND cached <= ?",
            (MAX_TOKENS,),
        ).fetchall()
        found += [BadValue("scopes", "cached", str(k), v, "integer", True) for k, v in rows]
    return found


def summary(bad: list[BadValue]) -> str:
    """One sentence naming the bad values (the first few, then how many more)."""
    named = "; ".join(b.describe() for b in bad[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    count = "a value" if len(bad) == 1 else f"{len(bad)} values"
    return f"holds {count} the budget cannot use: {named}{more}"


REPAIR_HINT = (
    "run `agentls doctor --repair`: it keeps a copy of the file, then sets each bad count to "
    f"{MAX_TOKENS:,} (so no budget looks less spent than it was; `agentls budget reset` starts "
    "it over) and each bad limit to 0 (set it again with `agentls budget set`)"
)


def repair_values(conn: sqlite3.Connection) -> list[BadValue]:
    """Make every bad value safe (see the module's docstring), in the caller's transaction."""
    bad = bad_values(conn)
    for b in bad:
        if b.table != "scopes":
            conn.execute("DELETE FROM reserved WHERE res_id = ?", (b.key,))
            conn.execute("DELETE FROM reservations WHERE id = ?", (b.key,))
        elif not b.above_input:
            # The column name comes from _COUNTS, never from the file.
            conn.execute(f"UPDATE scopes SET {b.column} = ? WHERE scope = ?", (_safe(b), b.key))
    if bad:  # after the counts are whole: cached tokens are part of the input tokens
        conn.execute("UPDATE scopes SET cached = input WHERE cached > input")
    return bad


def _safe(bad: BadValue) -> int:
    value = bad.value
    if bad.column == "estimated":
        return 1
    if isinstance(value, float) and value.is_integer() and 0 <= value <= MAX_TOKENS:
        return int(value)
    return 0 if bad.column == "lim" else MAX_TOKENS
