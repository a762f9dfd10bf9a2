"""What the end of a model call writes to the ledger: the usage it reported in its token scopes
and, under a dollar limit, its cost in its dollar scopes (core/budget_limits.py); or, for a
call that was not made, nothing (its reservation is dropped). When a team database is away, the
commit is kept in the workspace's journal for later (`keep`)."""

from __future__ import annotations

import logging

from agentls.core.bounds import call_usage_problem
from agentls.core.budget_grants import Reservation
from agentls.core.events import Usage
from agentls.core.pricing import nanos_of
from agentls.core.stores.ledger import LedgerStore, LedgerTx
from agentls.core.stores.postgres import DatabaseUnavailable

log = logging.getLogger("agentls.core.budget")


def settle_in(tx: LedgerTx, reservation: Reservation, usage: Usage | None, nanos: int = 0) -> None:
    r = reservation
    tx.settle(r.id, r.run_id, r.agent, r.scopes, usage, r.tokens)
    if r.dollar_id is not None:
        cost = None if usage is None else spent(usage, nanos)
        tx.settle(r.dollar_id, r.run_id, r.agent, r.dollar_scopes, cost, r.nanos)


def cost_nanos(reservation: Reservation, usage: Usage, cost_usd: float | None) -> int:
    """A call's cost in nano-dollars: as priced (`cost_usd`), else its usage at the price its
    reservation was made at."""
    if reservation.dollar_id is None:
        return 0
    if cost_usd is not None:
        return nanos_of(cost_usd)
    return reservation.price.nanos(usage) if reservation.price is not None else reservation.nanos


def spent(usage: Usage, nanos: int) -> Usage:
    """What a dollar scope commits: its nano-dollars, kept as output (core/budget_limits.py)."""
    return Usage(output_tokens=nanos, estimated=usage.estimated)


def check_usage(reservation: Reservation, usage: Usage) -> None:
    """Refuse a count the ledger must not hold; warn about one above the reservation."""
    if (problem := call_usage_problem(usage)) is not None:
        # metering.recordable records the reservation in place of such a report: this is a bug.
        raise ValueError(f"refused to commit run {reservation.run_id}'s usage: {problem}")
    if usage.total > reservation.tokens:
        # The estimate was not an upper bound. The spend happened, so it is recorded as is.
        log.warning(
            "run %s used %d tokens but reserved only %d; the prompt estimate was too low",
            reservation.run_id,
            usage.total,
            reservation.tokens,
        )


def keep(
    store: LedgerStore, reservation: Reservation, usage: Usage, nanos: int, error: Exception
) -> None:
    """Keep a commit the database could not take now; raise `error` if there is no journal."""
    r = reservation
    if not store.keep(r.id, r.run_id, r.agent, r.scopes, usage):
        raise error
    if r.dollar_id is not None:
        store.keep(r.dollar_id, r.run_id, r.agent, r.dollar_scopes, spent(usage, nanos))


def keep_abandoned(
    store: LedgerStore,
    reservation: Reservation,
    usage: Usage,
    nanos: int,
    error: BaseException | None,
) -> bool:
    """`keep` for a commit whose caller has gone: logged, never raised. True when settled."""
    if isinstance(error, DatabaseUnavailable):
        try:
            keep(store, reservation, usage, nanos, error)
        except DatabaseUnavailable:
            log.error("lost the usage of run %s's call: %s", reservation.run_id, error)
        return True
    if error is not None:
        log.error("committing run %s's call failed: %s", reservation.run_id, error)
    return False
