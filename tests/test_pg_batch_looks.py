"""A batch of calls on a team database reads its scopes once, and each call's look is answered from
that read kept up to date with the batch's writes (stores/pg_looks.py).

Each answer must be exactly what the server answers at that point of the transaction: after holds,
commits, releases, places taken and left in the wait queue, a run's limit set, a scope seen for
the first time. Here every look of a long sequence of such writes is compared with the server's
own answer to the same look, in the same transaction (rolled back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import psycopg
import pytest

from agentls.core.events import Usage
from agentls.core.stores.ledger import Hold, RunLimit, ScopeRow
from agentls.core.stores.pg_ledger import PgLedgerStore, PgLedgerTx
from agentls.core.stores.pg_ledger_sql import STATES, names_param, with_names

RUN, OTHER_RUN, AGENT, TOTAL = "run:r1", "run:r2", "agent:explain", "total"
NAMES = [RUN, AGENT, TOTAL]


class _RolledBack(Exception):
    pass


def _server(tx: PgLedgerTx, scopes: Sequence[str], waiter: str) -> list[ScopeRow]:
    """The server's answer to a look, read past the batch's copy."""
    names, value = names_param(scopes)
    rows = tx.conn.execute(with_names(STATES, names), (waiter, value)).fetchall()
    return _sorted(ScopeRow(s, lim, int(c), int(r), int(w)) for s, lim, c, r, w in rows)


def _sorted(rows: Iterable[ScopeRow]) -> list[ScopeRow]:
    return sorted(rows, key=lambda r: r.scope)


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE agentls.scopes SET lim = 10000, input = 400 WHERE scope = 'total'")
        conn.execute(
            "INSERT INTO agentls.scopes (scope, lim, output, reserved) "
            "VALUES ('agent:explain', 2000, 10, 50) "
            "ON CONFLICT (scope) DO UPDATE SET lim = 2000, output = 10, reserved = 50"
        )
        conn.execute(
            "INSERT INTO agentls.scopes (scope, lim, input, output, reserved) "
            "VALUES ('run:r1', NULL, 30, 20, 100)"
        )
        # A call of another process waits on the total.
        conn.execute(
            "INSERT INTO agentls.waiters (scope, id, host, pid_space, pid, pid_start, expires) "
            "VALUES ('total', 'elsewhere', 'h', 'p', 1, 's', now() + interval '1 minute')"
        )


def test_every_look_of_a_batch_answers_what_the_server_answers(team_db: str) -> None:
    _seed(team_db)
    store = PgLedgerStore(team_db)
    looked: list[str] = []

    def steps(tx: PgLedgerTx) -> list[tuple[str, Callable[[], object]]]:
        first = Hold("h1", "r1", "explain", 300, (RUN, AGENT, TOTAL))
        second = Hold("h2", "r2", "explain", 200, (OTHER_RUN, AGENT, TOTAL))
        return [
            ("nothing written yet", lambda: None),
            ("the run's limit set", lambda: tx.set_run_limit(RUN, 900)),
            ("a hold", lambda: tx.hold(first)),
            ("a place in the queue", lambda: tx.join_queue("w-me", [RUN, TOTAL])),
            ("another's place", lambda: tx.join_queue("w-other", [TOTAL])),
            ("a hold in a scope seen for the first time", lambda: tx.hold(second)),
            (
                "a commit",
                lambda: tx.settle(
                    "h1",
                    "r1",
                    "explain",
                    first.scopes,
                    Usage(input_tokens=120, output_tokens=45),
                    300,
                ),
            ),
            ("a place left", lambda: tx.leave_queue("w-me")),
            ("a release", lambda: tx.settle("h2", "r2", "explain", second.scopes, None, 200)),
            ("the run's limit changed", lambda: tx.set_run_limit(RUN, 400)),
        ]

    try:
        with pytest.raises(_RolledBack), store.transaction() as tx:
            tx.prefetch([*NAMES, OTHER_RUN, "run:never-seen"])
            for what, write in steps(tx):
                write()
                for waiter in ("w-me", "w-other"):
                    scopes = [*NAMES, OTHER_RUN]
                    answered = _sorted(tx.states(scopes, waiter))
                    assert answered == _server(tx, scopes, waiter), f"after {what}, as {waiter}"
                looked.append(what)
            raise _RolledBack
    finally:
        store.close()
    assert len(looked) == 10  # every step was looked at


def test_a_look_that_sets_its_runs_limit_writes_it(team_db: str) -> None:
    _seed(team_db)
    store = PgLedgerStore(team_db)
    try:
        with pytest.raises(_RolledBack), store.transaction() as tx:
            tx.prefetch(NAMES)
            answered = _sorted(tx.states(NAMES, "w-me", RunLimit(RUN, 700)))
            assert answered == _server(tx, NAMES, "w-me")
            assert next(r for r in answered if r.scope == RUN).limit == 700
            raise _RolledBack
    finally:
        store.close()


def test_a_look_at_a_scope_the_batch_did_not_read_asks_the_server(team_db: str) -> None:
    _seed(team_db)
    store = PgLedgerStore(team_db)
    try:
        with pytest.raises(_RolledBack), store.transaction() as tx:
            tx.prefetch([TOTAL])
            tx.open_window("day/total/2026-12-08", "day/total")  # forgets the window
            with psycopg.connect(team_db, autocommit=True) as elsewhere:
                # Not possible under the ledger's lock for agentls, but a look at a scope the
                # batch did not read must see the server's row whatever wrote it.
                elsewhere.execute(
                    "INSERT INTO agentls.scopes (scope, lim) VALUES ('agent:other', 77)"
                )
            (row,) = tx.states(["agent:other"], None)
            assert row.limit == 77
            raise _RolledBack
    finally:
        store.close()
