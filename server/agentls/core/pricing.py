"""What a model call cost in dollars, from its usage: the `prices` setting, else `genai-prices`.

`genai-prices` (Pydantic's price data, shipped in its wheel: no network) knows the public models
of the large providers. A model it does not know (a self-hosted one) is priced from the user's
`prices` setting, dollars per million tokens:

    "prices": {"llama3.1:8b": {"input": 0.05, "cachedInput": 0.025, "output": 0.08}}

A model named there takes that price even when `genai-prices` knows it (the user's word wins: a
negotiated rate, or a self-hosted copy of a public model). A model priced by neither has no cost
("unknown"); pricing never fails a call. Input tokens include the cached ones, as the usage
providers report does; reasoning tokens are part of the output and priced with it.

`genai-prices` takes ~0.3 s to import and ~40 ms to load its data: it is imported at the first
call to be priced, off the event loop (`acall_cost`), never at start-up.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from agentls.core.events import Usage

log = logging.getLogger(__name__)

# Dollars per million tokens; the dearest public model costs a few hundred.
MAX_PRICE = 1_000_000
_MILLION = Decimal(1_000_000)


class PriceSource(enum.StrEnum):
    GENAI_PRICES = "genai-prices"
    SETTING = "setting"
    UNKNOWN = "unknown"


class ModelPrice(BaseModel):
    """One model's price in the `prices` setting: dollars per million tokens."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
    input: float = Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)
    # Cached input (prompt caching); unset: the input price.
    cached_input: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False)
    output: float = Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)

    def cost(self, usage: Usage) -> Decimal:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        dollars = (
            Decimal(usage.input_tokens - cached) * Decimal(str(self.input))
            + Decimal(cached) * Decimal(str(cached_price))
            + Decimal(usage.output_tokens) * Decimal(str(self.output))
        )
        return dollars / _MILLION


@dataclass(frozen=True)
class CallCost:
    """A call's cost (None: no price known), where the price came from and the name it matched."""

    usd: float | None
    source: PriceSource
    priced_as: str | None = None

    def event_data(self) -> dict[str, Any]:
        """What a model_call event records: `cost_usd` (null when unknown) and `price_source`."""
        data: dict[str, Any] = {"cost_usd": self.usd, "price_source": self.source.value}
        if self.priced_as is not None:
            data["priced_as"] = self.priced_as
        return data


UNKNOWN = CallCost(None, PriceSource.UNKNOWN)


def call_cost(usage: Usage, models: Sequence[str], prices: Mapping[str, ModelPrice]) -> CallCost:
    """The cost of one call of the model known by `models` (the provider's name for it first,
    then the name it was asked for). Blocking the first time: see `acall_cost`."""
    names = [m for m in dict.fromkeys(models) if m]
    for name in names:
        if (price := _setting_price(name, prices)) is not None:
            return CallCost(_dollars(price.cost(usage)), PriceSource.SETTING, name)
    for name in names:
        if (dollars := _genai_price(usage, name)) is not None:
            return CallCost(_dollars(dollars), PriceSource.GENAI_PRICES, name)
    return UNKNOWN


async def acall_cost(
    usage: Usage, models: Sequence[str], prices: Mapping[str, ModelPrice]
) -> CallCost:
    """`call_cost` from async code: the first lookup (which imports and loads the price data)
    runs on a worker thread; later ones take ~0.1 ms and run here."""
    if not _loaded:
        return await asyncio.to_thread(call_cost, usage, models, prices)
    return call_cost(usage, models, prices)


def add_cost(total: float | None, cost: float | None) -> float | None:
    """A sum of costs; unknown (None) as soon as one part is unknown."""
    return None if total is None or cost is None else total + cost


def total_cost(costs: Iterable[float | None]) -> float | None:
    total: float | None = 0.0
    for cost in costs:
        total = add_cost(total, cost)
    return total


def format_usd(dollars: float | None) -> str:
    """`$0.000435`, `$0.0123`, `$12.34`: cents for a dollar or more, else three significant
    digits (a model call often costs a fraction of a cent); `unknown` without a price."""
    if dollars is None:
        return "unknown"
    if dollars >= 1 or dollars == 0:
        return f"${dollars:,.2f}"
    places = max(2, 2 - math.floor(math.log10(dollars)))
    text = f"{dollars:.{places}f}".rstrip("0")
    return "$" + (text if len(text.split(".")[1]) >= 2 else f"{dollars:.2f}")


def _setting_price(name: str, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    if name in prices:
        return prices[name]
    folded = name.casefold()
    return next((p for key, p in prices.items() if key.casefold() == folded), None)


_loaded = False


def _genai_price(usage: Usage, model: str) -> Decimal | None:
    global _loaded
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price
    except ImportError:  # a broken install: costs are unknown, calls go on
        log.warning("genai-prices is not installed: model calls have no cost")
        return None
    counts = {
        "input_tokens": usage.input_tokens,
        "cache_read_tokens": min(usage.cached_input_tokens, usage.input_tokens),
        "output_tokens": usage.output_tokens,
    }
    if usage.reasoning_tokens:
        counts["output_reasoning_tokens"] = min(usage.reasoning_tokens, usage.output_tokens)
    try:
        return calc_price(PriceUsage(**counts), model_ref=model).total_price
    except LookupError:
        return None
    except Exception as exc:  # its data or code failing must never fail a call
        log.warning("genai-prices could not price %r: %s", model, exc)
        return None
    finally:
        _loaded = True  # its data is loaded now: later lookups are quick


def _dollars(value: Decimal) -> float | None:
    dollars = float(value)
    return dollars if math.isfinite(dollars) else None
