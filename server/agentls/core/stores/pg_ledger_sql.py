"""The team ledger's statements that cost the client most, and how their scope names travel.

Kept apart from stores/pg_ledger.py (which runs them) because each is shaped for speed: a call's
look is the one statement every model call of every team member makes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from agentls.core.stores.postgres import SCHEMA

# Scope names go to the server joined by a separator no name holds: psycopg dumps a list element
# by element, which costs the client more than all the rest of a statement. Names holding it
# (none agentls makes: user names are quoted, agent names are words) go as a list.
_SEP = "\x1f"


def names_param(scopes: Sequence[str]) -> tuple[str, str | list[str]]:
    """The SQL for a text[] of scope names (in place of `$NAMES`), and its parameter."""
    if any(_SEP in scope for scope in scopes):
        return "%s::text[]", list(scopes)
    return "string_to_array(%s, chr(31))", _SEP.join(scopes)


@functools.lru_cache(maxsize=32)
def with_names(sql: str, names: str) -> str:
    return sql.replace("$NAMES", names)


# Each scope's limit, usage, reservations and (where limited) the others waiting on it.
STATES = (
    "SELECT s.scope, s.lim, s.input + s.output, s.reserved, "
    "CASE WHEN s.lim IS NULL THEN 0 ELSE (SELECT count(*) FROM "
    f"{SCHEMA}.waiters w WHERE w.scope = s.scope AND w.id IS DISTINCT FROM %s "
    f"AND w.expires > now()) END FROM {SCHEMA}.scopes s WHERE s.scope = ANY ($NAMES)"
)

# The same, with a run's limit set first where it differs (one statement instead of three: the
# set, and the look before and after it). Every part of a statement sees the rows as they were
# when it began, so the run's row is answered as the set leaves it: its new limit; its usage and
# reservations, which the set does not touch (none where it has no row yet: `reserve` makes the
# row of a scope it is the first to hold in); its waiters counted as for a limited scope. The
# set runs whatever the rows: `done` reads all of its output.
STATES_SETTING_RUN = f"""
WITH want AS (SELECT %s::text AS scope, %s::bigint AS lim),
done AS (
    SELECT {SCHEMA}.set_run_limit(w.scope, w.lim) FROM want w WHERE NOT EXISTS (
        SELECT 1 FROM {SCHEMA}.scopes s WHERE s.scope = w.scope AND s.lim IS NOT DISTINCT FROM w.lim)
),
found AS (
    SELECT s.scope, CASE WHEN s.scope = w.scope THEN w.lim ELSE s.lim END AS lim,
           s.input + s.output AS used, s.reserved
    FROM {SCHEMA}.scopes s, want w WHERE s.scope = ANY ($NAMES)
    UNION ALL
    SELECT w.scope, w.lim, 0, 0 FROM want w
    WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.scopes s WHERE s.scope = w.scope)
)
SELECT f.scope, f.lim, f.used, f.reserved,
       CASE WHEN f.lim IS NULL THEN 0 ELSE (SELECT count(*) FROM {SCHEMA}.waiters w
           WHERE w.scope = f.scope AND w.id IS DISTINCT FROM %s AND w.expires > now()) END
FROM found f, (SELECT count(*) FROM done) AS d
"""
