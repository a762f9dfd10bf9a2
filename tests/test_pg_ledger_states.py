"""A call's look at its scopes on a team database sets its run's limit in the same statement.

The combined statement must answer exactly what setting the limit and then looking answers, in
every state a run's row can be in: not there yet, there without a limit (with calls of the run
already waiting on it), there with another limit, there with this one. Both answers are taken
from the same database state (each in a transaction rolled back) and compared.
"""

from __future__ import annotations

import psycopg
import pytest

from agentls.core.stores.ledger import RunLimit, ScopeRow
from agentls.core.stores.pg_ledger import PgLedgerStore

NAMES = ["total", "agent:explain", "run:r1"]


class _RolledBack(Exception):
    pass


def _look(store: PgLedgerStore, combined: bool) -> tuple[list[ScopeRow], list[ScopeRow]]:
    """What the call's look answers, and what a look after it in its transaction sees."""
    rows: list[ScopeRow] = []
    after: list[ScopeRow] = []
    with pytest.raises(_RolledBack), store.transaction() as tx:
        if combined:
            rows = tx.states(NAMES, "me", RunLimit("run:r1", 700))
        else:
            tx.set_run_limit("run:r1", 700)
            rows = tx.states(NAMES, "me")
        after = tx.states(NAMES, "me")
        raise _RolledBack
    return sorted(rows, key=lambda r: r.scope), sorted(after, key=lambda r: r.scope)


@pytest.mark.parametrize(
    "run_row",
    [
        None,  # the run's first call
        "INSERT INTO agentls.scopes (scope, lim, input, output, reserved) "
        "VALUES ('run:r1', NULL, 30, 20, 100)",  # its calls held tokens before it had a limit
        "INSERT INTO agentls.scopes (scope, lim, input, output, reserved) "
        "VALUES ('run:r1', 500, 30, 20, 100)",  # another limit
        "INSERT INTO agentls.scopes (scope, lim, input, output, reserved) "
        "VALUES ('run:r1', 700, 30, 20, 100)",  # this limit already
    ],
    ids=["new", "unlimited", "other-limit", "same-limit"],
)
def test_the_combined_look_answers_as_setting_then_looking(
    team_db: str, run_row: str | None
) -> None:
    with psycopg.connect(team_db, autocommit=True) as conn:
        conn.execute("UPDATE agentls.scopes SET lim = 10000, input = 400 WHERE scope = 'total'")
        conn.execute(
            "INSERT INTO agentls.scopes (scope, lim, reserved) VALUES ('agent:explain', 2000, 50) "
            "ON CONFLICT (scope) DO UPDATE SET lim = 2000, reserved = 50"
        )
        if run_row is not None:
            conn.execute(run_row)
        # Two other calls of the run wait on its scope (and on the total), one of them us.
        conn.execute(
            "INSERT INTO agentls.waiters (scope, id, host, pid_space, pid, pid_start, expires) "
            "SELECT s, i, 'h', 'p', 1, 's', now() + interval '1 minute' "
            "FROM unnest(ARRAY['run:r1', 'total']) s, unnest(ARRAY['other', 'me']) i"
        )
    store = PgLedgerStore(team_db)
    try:
        combined, two_steps = _look(store, True), _look(store, False)
    finally:
        store.close()
    assert combined == two_steps
    answered, after = combined
    assert answered == after  # the limit was written, not only answered
    run = next(r for r in answered if r.scope == "run:r1")
    assert run.limit == 700 and run.waiting == 1  # the other call, not us


def test_scope_names_reach_the_server_whole_whatever_they_hold(team_db: str) -> None:
    """Names go joined by a separator for speed; a name holding it must not be split."""
    odd = "agent:odd\x1fname"
    with psycopg.connect(team_db, autocommit=True) as conn:
        conn.execute("INSERT INTO agentls.scopes (scope, lim) VALUES (%s, 9)", (odd,))
        conn.execute("INSERT INTO agentls.scopes (scope, lim) VALUES ('agent:plain', 7)")
    store = PgLedgerStore(team_db)
    try:
        with store.transaction(write=False) as tx:
            found = {r.scope: r.limit for r in tx.states([odd, "agent:plain", "total"], None)}
            plain = {r.scope: r.limit for r in tx.states(["agent:plain"], None)}
    finally:
        store.close()
    assert found == {odd: 9, "agent:plain": 7}
    assert plain == {"agent:plain": 7}
