"""The ledger's worker thread: operations queued while it is busy share one transaction, in order;
one that fails fails alone; a caller that stops waiting hands its result to `abandoned`."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from agentls.core.budget import TokenBudgeter
from agentls.core.events import Usage


async def test_reservations_queued_while_the_ledger_is_busy_share_one_transaction(
    tmp_path: Path,
) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as ledger:
        ledger.set_limit(10_000)
        assert ledger.path is not None
        holder = sqlite3.connect(ledger.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writes: the worker waits for it
        calls = [
            asyncio.create_task(
                ledger.areserve(run_id=f"r{i}", agent="a", prompt_tokens=100, max_tokens=100)
            )
            for i in range(10)
        ]
        for _ in range(20):
            await asyncio.sleep(0)
        holder.execute("ROLLBACK")
        holder.close()
        grants = await asyncio.gather(*calls)

        # The first batch may have held only the first call; all the others came in the next.
        assert ledger.batches <= 2
        assert [g.tokens for g in grants] == [200] * 10
        assert ledger.snapshot().reserved == 2000
        await asyncio.gather(
            *(ledger.acommit(g, Usage(input_tokens=100, output_tokens=50)) for g in grants)
        )
        assert ledger.snapshot().used == 1500 and ledger.snapshot().reserved == 0


async def test_an_operation_that_fails_fails_alone(tmp_path: Path) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as ledger:

        def ok(n: int) -> Callable[[sqlite3.Connection], int]:
            def run(conn: sqlite3.Connection) -> int:
                conn.execute("INSERT INTO scopes (scope, lim) VALUES (?, ?)", (f"t{n}", n))
                return n

            return run

        def boom(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO scopes (scope, lim) VALUES ('t9', 9)")
            raise RuntimeError("boom")

        results = await asyncio.gather(
            ledger._submit(ok(1)), ledger._submit(boom), ledger._submit(ok(2)),
            return_exceptions=True,
        )  # fmt: skip

        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], RuntimeError)
        with ledger._tx(write=False) as conn:
            scopes = {r[0] for r in conn.execute("SELECT scope FROM scopes WHERE scope LIKE 't%'")}
        assert scopes == {"t1", "t2"}  # what the failing one wrote was rolled back


async def test_a_commit_whose_caller_is_cancelled_still_lands(tmp_path: Path) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as ledger:
        r = await ledger.areserve(run_id="r", agent="a", prompt_tokens=10, max_tokens=10)
        committing = asyncio.create_task(ledger.acommit(r, Usage(input_tokens=10, output_tokens=5)))
        await asyncio.sleep(0)
        committing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await committing
        await ledger.asettled()
        snap = ledger.snapshot()
        assert (snap.used, snap.reserved) == (15, 0) and r.settled
