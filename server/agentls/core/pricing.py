"""What a model call cost in dollars, from its usage: the `prices` setting, else `genai-prices`.

`genai-prices` (Pydantic's price data, shipped in its wheel: no network) knows the public models
of the large providers. A model it does not know (a self-hosted one) is priced from the user's
`prices` setting, dollars per million tokens:

    "prices": {"llama3.1:8b": {"input": 0.05, "cachedInput": 0.025, "output": 0.08}}

A model named there takes that price even when `genai-prices` knows it (the user's word wins: a
negotiated rate, or a self-hosted copy of a public model). Else a backend's own price counts
(`ChatModel.own_price`: the embedded model, which runs on this machine, costs nothing). A model
priced by none of these has no cost ("unknown"); pricing never fails a call. Input tokens
include the cached ones, as the usage providers report does; reasoning tokens are part of the
output and priced with it.

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
    # The model backend's own word (`ChatModel.own_price`): the embedded model, which runs on
    # this machine, costs nothing.
    EMBEDDED = "embedded"
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


# What a call of a model that runs on this machine costs (the embedded model's `own_price`).
FREE = ModelPrice(input=0, output=0)


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


def call_cost(
    usage: Usage,
    models: Sequence[str],
    prices: Mapping[str, ModelPrice],
    own: ModelPrice | None = None,
) -> CallCost:
    """The cost of one call of the model known by `models` (the provider's name for it first,
    then the name it was asked for): the `prices` setting's, else the backend's `own` price,
    else genai-prices'. Blocking the first time: see `acall_cost`."""
    names = [m for m in dict.fromkeys(models) if m]
    for name in names:
        if (price := _setting_price(name, prices)) is not None:
            return CallCost(_dollars(price.cost(usage)), PriceSource.SETTING, name)
    if own is not None:
        return CallCost(
            _dollars(own.cost(usage)), PriceSource.EMBEDDED, names[0] if names else None
        )
    for name in names:
        if (dollars := _genai_price(usage, name)) is not None:
            return CallCost(_dollars(dollars), PriceSource.GENAI_PRICES, name)
    return UNKNOWN


async def acall_cost(
    usage: Usage,
    models: Sequence[str],
    prices: Mapping[str, ModelPrice],
    own: ModelPrice | None = None,
) -> CallCost:
    """`call_cost` from async code: the first lookup in genai-prices (which imports and loads
    its data) runs on a worker thread; the `prices` setting's and later lookups (~0.1 ms) run
    here, without giving the loop away (metering.py relies on it between a call and its
    commit)."""
    if _answers_at_once(models, prices, own):
        return call_cost(usage, models, prices, own)
    return await asyncio.to_thread(call_cost, usage, models, prices, own)


def add_cost(total: float | None, cost: float | None) -> float | None:
    """A sum of costs; unknown (None) as soon as one part is unknown."""
    return None if total is None or cost is None else total + cost


def total_cost(costs: Iterable[float | None]) -> float | None:
    total: float | None = 0.0
    for cost in costs:
        total = add_cost(total, cost)
    return total


@dataclass(frozen=True)
class CallPrice:
    """A model's price per token in nano-dollars, rounded up, at its dearest tier: what a call
    under a dollar limit reserves (`bound`), never less than what it can cost."""

    model: str
    source: PriceSource
    input: int
    cached_input: int
    output: int

    def bound(self, prompt_tokens: int, max_tokens: int) -> int:
        """The most a call of this prompt and answer can cost (every prompt token uncached)."""
        return prompt_tokens * self.input + max_tokens * self.output

    def nanos(self, usage: Usage) -> int:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        return (
            (usage.input_tokens - cached) * self.input
            + cached * self.cached_input
            + usage.output_tokens * self.output
        )


# Tokens priced to find a model's per-token price: past every tier of genai-prices' data.
_PROBE = 10_000_000
_NANOS = Decimal(10**9)


def call_price(
    models: Sequence[str], prices: Mapping[str, ModelPrice], own: ModelPrice | None = None
) -> CallPrice | None:
    """The per-token price of the model known by `models`, as `call_cost` finds it; None when
    it has none. Blocking the first time (see `acall_price`)."""
    names = [m for m in dict.fromkeys(models) if m]
    for name in names:
        if (price := _setting_price(name, prices)) is not None:
            return _per_token_price(name, PriceSource.SETTING, price)
    if own is not None:
        return _per_token_price(names[0] if names else "?", PriceSource.EMBEDDED, own)
    for name in names:
        uncached = _genai_price(Usage(input_tokens=_PROBE), name)
        both = _genai_price(Usage(input_tokens=_PROBE, output_tokens=_PROBE), name)
        if uncached is None or both is None:
            continue
        cached = _genai_price(Usage(input_tokens=_PROBE, cached_input_tokens=_PROBE), name)
        per = [uncached, uncached if cached is None else cached, both - uncached]
        return CallPrice(name, PriceSource.GENAI_PRICES, *(_per_token(p / _PROBE) for p in per))
    return None


async def acall_price(
    models: Sequence[str], prices: Mapping[str, ModelPrice], own: ModelPrice | None = None
) -> CallPrice | None:
    """`call_price` from async code (the first lookup in genai-prices on a worker thread)."""
    if _answers_at_once(models, prices, own):
        return call_price(models, prices, own)
    return await asyncio.to_thread(call_price, models, prices, own)


def _answers_at_once(
    models: Sequence[str], prices: Mapping[str, ModelPrice], own: ModelPrice | None
) -> bool:
    """Whether a lookup needs no genai-prices data that is not loaded yet (so it may run on the
    event loop): the data is loaded, or the backend or the `prices` setting answers first."""
    return (
        _loaded
        or own is not None
        or any(_setting_price(m, prices) is not None for m in models if m)
    )


def _per_token_price(name: str, source: PriceSource, price: ModelPrice) -> CallPrice:
    cached = price.input if price.cached_input is None else price.cached_input
    per = [Decimal(str(p)) / _MILLION for p in (price.input, cached, price.output)]
    return CallPrice(name, source, *(_per_token(p) for p in per))


def nanos_of(dollars: float) -> int:
    """Dollars as whole nano-dollars, rounded up (a ledger never holds less than was spent)."""
    return math.ceil(Decimal(str(dollars)) * _NANOS)


def _per_token(dollars: Decimal) -> int:
    return max(0, math.ceil(dollars * _NANOS))


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
        if not _loaded:
            log.warning("genai-prices is not installed: model calls have no cost")
        _loaded = True  # nothing more to load
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
