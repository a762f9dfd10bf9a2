"""One settings schema: the LSP settings model is the source, and the VS Code contribution in
client-vscode/package.json must declare exactly its settings, with the same types, bounds and
defaults (plus the client's own `python`, `importStrategy` and `trace.server`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentls.lsp.settings_schema import contributed_settings

PACKAGE = Path(__file__).parent.parent / "client-vscode" / "package.json"
CONTRIBUTED: dict[str, dict[str, Any]] = json.loads(PACKAGE.read_text(encoding="utf-8"))[
    "contributes"
]["configuration"]["properties"]
# Settings of the VS Code client itself, which the server never reads.
CLIENT_ONLY = {"agentls.python", "agentls.importStrategy", "agentls.trace.server"}
MODEL = contributed_settings()


def _types(value: Any) -> list[str]:
    return sorted(value) if isinstance(value, list) else [value]


def _shape(schema: dict[str, Any]) -> dict[str, Any]:
    """What the settings validation checks: types (in any order), bounds, nested shapes."""
    out: dict[str, Any] = {}
    for word, value in schema.items():
        if word == "type":
            out[word] = _types(value)
        elif word in ("minimum", "maximum", "required"):
            out[word] = value
        elif word in ("additionalProperties", "items") and isinstance(value, dict):
            out[word] = _shape(value)
        elif word == "properties":
            out[word] = {k: _shape(v) for k, v in value.items()}
    return out


def test_package_json_contributes_exactly_the_model_settings():
    assert set(CONTRIBUTED) - CLIENT_ONLY == set(MODEL)


def test_the_derived_schema_covers_the_settings_users_asked_for():
    assert {"agentls.maxOutputTokens", "agentls.allowGeneratedEditTools"} <= set(MODEL)
    assert "agentls.apiKey" not in MODEL  # only ever from secret storage


@pytest.mark.parametrize("key", sorted(MODEL))
def test_each_setting_has_the_model_type_and_bounds(key: str):
    assert _shape(CONTRIBUTED[key]) == _shape(MODEL[key]), key


@pytest.mark.parametrize("key", sorted(MODEL))
def test_each_setting_has_the_model_default(key: str):
    assert CONTRIBUTED[key]["default"] == MODEL[key]["default"], key


def test_bounds_reach_the_client():
    """The server's bounds are what the editor's settings UI enforces."""
    assert CONTRIBUTED["agentls.maxParallel"]["maximum"] == 256
    assert CONTRIBUTED["agentls.budget.perRun"]["minimum"] == 1
    assert CONTRIBUTED["agentls.maxOutputTokens"]["minimum"] == 16


def test_the_clients_time_bound_is_the_servers() -> None:
    # The client checks timeouts itself before sending them; the bound must be the server's.
    import re

    from agentls.core.bounds import MAX_SECONDS

    source = (PACKAGE.parent / "src" / "common" / "settingsModel.ts").read_text()
    (declared,) = re.findall(r"export const MAX_SECONDS = (\d+);", source)
    assert float(declared) == MAX_SECONDS
