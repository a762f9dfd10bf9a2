"""A token limit as people write it, parsed the same way by every front end (the CLI's
`budget set N` and `--budget`, the ACP panel's `/budget set N`); and a dollar limit (`$50`)."""

from __future__ import annotations

import re
from decimal import Decimal

from agentls.core.bounds import MAX_TOKENS

UNLIMITED = ("none", "unlimited", "off")
_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}
_NUMBER = re.compile(r"(\d[\d_,]{0,30}(?:\.\d{1,30})?(?:e\+?\d{1,4})?)([km]?)")


def parse_token_limit(text: str) -> int | None:
    """'20000', '20_000', '20,000', '20k', '1.5M', '2e5' -> tokens; 'none'/'unlimited' -> None.

    Raises ValueError with one sentence (without the argument's name: callers prefix it).
    """
    parsed = _amount(
        text, _NUMBER, "expected a number of tokens (e.g. 200000, 200k, 1.5M) or 'none'"
    )
    if parsed is None:
        return None
    tokens, shown = parsed
    if tokens > MAX_TOKENS:
        raise ValueError(
            f"{shown!r} is more than the largest limit, {MAX_TOKENS:,} tokens "
            "(use 'none' for no limit)"
        )
    if tokens != tokens.to_integral_value():
        raise ValueError(f"{shown!r} is not a whole number of tokens")
    return int(tokens)


_DOLLARS = re.compile(r"\$\s*(\d[\d_,]{0,30}(?:\.\d{1,9})?)([km]?)")


def parse_dollar_limit(text: str) -> int | None:
    """'$50', '$12.50', '$1.5k' -> nano-dollars (core/budget_limits.py); 'none' -> None.

    Raises ValueError with one sentence (without the argument's name: callers prefix it).
    """
    from agentls.core.budget_limits import MAX_USD, NANOS_PER_USD

    parsed = _amount(
        text,
        _DOLLARS,
        "expected dollars such as '$50', '$12.50' or '$1.5k' (in quotes in a shell), or 'none'",
    )
    if parsed is None:
        return None
    dollars, shown = parsed
    if dollars > MAX_USD:
        raise ValueError(f"{shown!r} is more than the largest dollar limit, ${MAX_USD:,}")
    nanos = dollars * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{shown!r} has more than nine decimal places")
    return int(nanos)


def _amount(text: str, pattern: re.Pattern[str], expected: str) -> tuple[Decimal, str] | None:
    """The amount `text` gives (its number times its k or M) and `text` as an error shows it;
    None for no limit. Decimal, not float: exact for every digit given, and no overflow on
    1e400."""
    value = text.strip().lower()
    if value in UNLIMITED:
        return None
    shown = text if len(text) <= 40 else text[:39] + "…"
    match = pattern.fullmatch(value)
    if match is None:
        if re.fullmatch(r"-\s*\$?\s*\d.*", value):
            raise ValueError(f"the limit cannot be negative, got {shown!r}")
        raise ValueError(f"{expected}, got {shown!r}")
    number = Decimal(match.group(1).replace("_", "").replace(",", ""))
    return number * _SUFFIXES[match.group(2)], shown
