"""Random nested JSON as the editor's settings: warnings, never an exception, and a valid budget is
never lost because some other setting is wrong."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentls.lsp.settings import LspSettings, parse_settings

KEYS = [
    "model",
    "baseUrl",
    "apiKey",
    "budget",
    "maxParallel",
    "maxDepth",
    "maxOutputTokens",
    "mcpServers",
    "agentFolders",
    "allowGeneratedEditTools",
    "total",
    "perRun",
    "perAgent",
    "command",
    "args",
    "env",
]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
layers = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=8)


@FUZZ
@given(st.lists(json_values | layers, max_size=3))
def test_random_settings_layers_give_settings_and_warnings(given_layers: list[Any]) -> None:
    parsed, problems = parse_settings(*given_layers)
    assert isinstance(parsed, LspSettings)
    assert all(isinstance(p, str) and p for p in problems)


@FUZZ
@given(layers.filter(lambda d: "budget" not in d), st.integers(min_value=0, max_value=10**12))
def test_a_valid_budget_survives_any_other_setting(junk: dict[str, Any], total: int) -> None:
    parsed, _ = parse_settings({**junk, "budget": {"total": total}})
    assert parsed.budget.total == total


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["perRun", "perAgent", "other"]), json_values, max_size=3),
    st.integers(min_value=0, max_value=10**12),
)
def test_a_valid_total_survives_bad_neighbours_inside_budget(
    junk: dict[str, Any], total: int
) -> None:
    parsed, _ = parse_settings({"budget": {**junk, "total": total}})
    assert parsed.budget.total == total
