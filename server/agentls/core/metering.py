"""Budget metering of one model call: reserve before it, commit what it really used after it.

The prompt bound and the ledger's transactions run off the event loop. Whatever ends the call
(an answer, an error, a cancel), the ledger ends up holding what the provider billed, or a bound of
it, and never a stale reservation. A usage report that cannot be true (not a count, above any
context window, more cached than prompt tokens: `bounds.call_usage_problem`) is not recorded: the
call's reservation is, marked estimated, with a warning in the run's events and result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentls.core.bounds import call_usage_problem
from agentls.core.budget import DEFAULT_MIN_OUTPUT_TOKENS, Reservation, TokenBudgeter
from agentls.core.events import EventKind, RunEvent, Usage
from agentls.core.llm import ChatModel, ChatRequest, ChatResponse, ModelError
from agentls.core.pricing import CallCost, ModelPrice, acall_cost, acall_price, add_cost
from agentls.core.run_state import EventListener, RunState


async def metered_call(
    budgeter: TokenBudgeter,
    run: RunState,
    model: ChatModel,
    request: ChatRequest,
    emit: EventListener,
    *,
    wait_seconds: float,
    min_output_tokens: int = DEFAULT_MIN_OUTPUT_TOKENS,
    prices: Mapping[str, ModelPrice] | None = None,
) -> ChatResponse:
    """Make one model call within the run's budgets; raises BudgetExceeded before an unaffordable one.

    The call's cost in dollars (`prices`: the user's, see core/pricing.py) is added to the run's
    and recorded on its model_call event."""
    prices = prices or {}
    emit(run.event(EventKind.WAITING, data={"for": "budget", "turn": run.turn}))
    prompt_bound = await asyncio.to_thread(model.prompt_token_bound, request)
    # Before the reservation: a dollar limit holds the call's cost bound at this price, and the
    # price data is loaded here, so pricing the answer later never gives the loop away.
    price = await acall_price((model.name,), prices, model.own_price)
    reservation = await budgeter.areserve(
        run_id=run.run_id,
        agent=run.definition.name,
        prompt_tokens=prompt_bound,
        max_tokens=request.max_tokens,
        run_limit=run.budget,
        wait_seconds=wait_seconds,
        min_output_tokens=min_output_tokens,
        ancestor_run_ids=run.ancestors,
        price=price,
        model=model.name,
    )
    request.max_tokens = reservation.max_tokens
    streamed_before = len(run.streamed)

    def on_delta(delta: str) -> None:
        run.streamed.append(delta)
        emit(run.event(EventKind.OUTPUT_DELTA, data={"delta": delta, "turn": run.turn}))

    started = time.monotonic()
    emit(run.event(EventKind.WAITING, data={"for": "model", "turn": run.turn}))
    try:
        response = await model.complete(request, on_delta)
    except BaseException as exc:
        # Cancelled or failed mid-call: the provider may have billed what it streamed. Commit
        # what it reported, else a bound of it (prompt + streamed bytes), so the spend is never
        # lost from the ledger.
        spent = sum(len(s.encode()) for s in run.streamed[streamed_before:])
        used: Usage | None = None
        if isinstance(exc, ModelError) and exc.usage is not None:
            used, warning = recordable(exc.usage, None, reservation)
            if warning is not None:
                run.warnings.append(warning)
        elif spent:
            used = Usage(input_tokens=prompt_bound, output_tokens=spent, estimated=True)
            used = clamped(used, reservation.tokens)
        if used is None:
            await budgeter.arelease(reservation)
            raise
        run.usage = run.usage + used
        await budgeter.acommit(reservation, used)
        cost = await _charge(run, used, model, prices)
        # Recorded like any call, so the trail's spend (`agentls report`) is the ledger's.
        cut = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
        call = _CallRecord(run, started, model.name, request.max_tokens, reservation.tokens)
        emit(call.event(used, cost, {"cut_short": cut}))
        raise
    response.usage, warning = recordable(response.usage, response.usage_problem, reservation)
    run.usage = run.usage + response.usage
    try:
        cost = await acall_cost(
            response.usage, (response.model, model.name), prices, model.own_price
        )
    except asyncio.CancelledError:  # the call was made: its usage is committed all the same
        await budgeter.acommit(reservation, response.usage)
        raise
    await budgeter.acommit(reservation, response.usage, cost.usd)
    run.cost_usd = add_cost(run.cost_usd, cost.usd)
    if warning is None:
        warning = overshoot(response.usage, request.max_tokens, reservation.tokens)
    if warning is not None:
        run.warnings.append(warning)
    call = _CallRecord(run, started, model.name, request.max_tokens, reservation.tokens)
    extra = {
        "model": response.model,
        "finish_reason": response.finish_reason,
        "tool_calls": [c.name for c in response.tool_calls],
        **({"warning": warning} if warning else {}),
    }
    content = {
        "messages": request.messages,
        "output": response.text,
        "tool_calls": response.tool_calls,
    }
    emit(call.event(response.usage, cost, extra, content))
    return response


@dataclass
class _CallRecord:
    """What the trail records of every model call, however it ended (`model_call`)."""

    run: RunState
    started: float  # time.monotonic() as the call went out
    request_model: str
    max_tokens: int
    reserved: int

    def event(
        self,
        usage: Usage,
        cost: CallCost,
        extra: dict[str, Any],
        content: dict[str, Any] | None = None,
    ) -> RunEvent:
        data = {
            "turn": self.run.turn,
            "request_model": self.request_model,
            "call_usage": usage.model_dump(),
            "max_tokens": self.max_tokens,
            "reserved": self.reserved,
            **cost.event_data(),
            **extra,
        }
        duration_ms = (time.monotonic() - self.started) * 1000.0
        return self.run.event(
            EventKind.MODEL_CALL, duration_ms=duration_ms, data=data, content=content
        )


async def _charge(
    run: RunState, used: Usage, model: ChatModel, prices: Mapping[str, ModelPrice]
) -> CallCost:
    """Add what a call that ended early (cancelled, failed) was billed to the run's cost."""
    cost = await acall_cost(used, (model.name,), prices, model.own_price)
    run.cost_usd = add_cost(run.cost_usd, cost.usd)
    return cost


def recordable(
    usage: Usage, problem: str | None, reservation: Reservation
) -> tuple[Usage, str | None]:
    """What the ledger records for a call the provider reported `usage` for, and why it differs.

    A report that cannot be true is replaced by the call's reservation (its prompt bound and
    max_tokens): agentls' own bound of what the call could use, never 0 and never a number that
    would overflow the ledger.
    """
    problem = problem or call_usage_problem(usage)
    if problem is None:
        return usage, None
    held = Usage(
        input_tokens=reservation.prompt_tokens,
        output_tokens=reservation.tokens - reservation.prompt_tokens,
        estimated=True,
    )
    return held, (
        f"{problem}; the ledger recorded the call's reservation, {reservation.tokens:,} tokens, "
        "instead"
    )


def overshoot(usage: Usage, max_tokens: int, reserved: int) -> str | None:
    """A warning when the provider reported more than the call was allowed (it was committed)."""
    if usage.output_tokens > max_tokens:
        what = (
            f"the model provider reported {usage.output_tokens:,} output tokens for a call "
            f"limited to {max_tokens:,}"
        )
    elif usage.total > reserved:
        what = (
            f"the model provider reported {usage.total:,} tokens for a call that reserved "
            f"{reserved:,} (its prompt count was higher than agentls' bound)"
        )
    else:
        return None
    return f"{what}; the ledger recorded what it reported, so a budget may now be over its limit"


def clamped(usage: Usage, limit: int) -> Usage:
    """An estimate never claims more than was reserved for the call."""
    if usage.total <= limit:
        return usage
    output = max(0, limit - usage.input_tokens)
    return Usage(input_tokens=min(usage.input_tokens, limit), output_tokens=output, estimated=True)
