"""The `agentls.*` settings as an editor contributes them, derived from the one settings model.

`LspSettings` (settings.py) is the source. VS Code lists settings flat (`agentls.budget.total`), so
nested objects become dotted keys while maps and lists stay one setting. tests/test_settings_schema.py
checks client-vscode/package.json against `contributed_settings()`: names, types, bounds, defaults.
A new setting is added to the model; the test then names what package.json (and the client's
settings model) still lack.
"""

from __future__ import annotations

from typing import Any

from agentls.lsp.settings import LspSettings

# Never a setting: the API key reaches the server only in initializationOptions, from secret storage.
SECRET_KEYS = frozenset({"apiKey"})
# Settings for editors without workspace trust of their own; the VS Code client fills
# `trustWorkspace` from VS Code's workspace trust, so it contributes neither.
NOT_CONTRIBUTED = frozenset({"trustWorkspace", "trustedFolders"})
_SCHEMA_WORDS = (
    "type",
    "minimum",
    "maximum",
    "properties",
    "required",
    "additionalProperties",
    "items",
)


def settings_json_schema() -> dict[str, Any]:
    """The JSON schema of the `agentls` section, camelCase as on the wire."""
    return LspSettings.model_json_schema(by_alias=True)


def contributed_settings() -> dict[str, dict[str, Any]]:
    """`agentls.<key>` -> its JSON schema (type, bounds, default) as package.json must declare it."""
    schema = settings_json_schema()
    defaults = LspSettings().model_dump(by_alias=True)
    out: dict[str, dict[str, Any]] = {}
    _flatten(schema, schema, defaults, "agentls", out)
    return out


def _flatten(
    root: dict[str, Any],
    schema: dict[str, Any],
    defaults: dict[str, Any],
    prefix: str,
    out: dict[str, dict[str, Any]],
) -> None:
    for name, prop in schema.get("properties", {}).items():
        if name in SECRET_KEYS or (prefix == "agentls" and name in NOT_CONTRIBUTED):
            continue
        key = f"{prefix}.{name}"
        resolved = _resolve(root, prop)
        if resolved.get("type") == "object" and "properties" in resolved:
            _flatten(root, resolved, defaults.get(name) or {}, key, out)
            continue
        out[key] = _normalize(root, prop) | {"default": defaults.get(name)}


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _resolve(root, root["$defs"][ref.rsplit("/", 1)[-1]])
    return schema


def _normalize(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Only the words VS Code's settings validation understands; `X | None` becomes a type list."""
    schema = _resolve(root, schema)
    if "anyOf" in schema:
        variants = [_normalize(root, s) for s in schema["anyOf"]]
        types = [v["type"] for v in variants]
        merged: dict[str, Any] = {}
        for v in variants:
            merged |= {k: val for k, val in v.items() if k != "type"}
        return {"type": types} | merged
    out: dict[str, Any] = {}
    for word in _SCHEMA_WORDS:
        if word not in schema:
            continue
        value = schema[word]
        if word == "properties":
            value = {k: _normalize(root, v) for k, v in value.items()}
        elif word in ("additionalProperties", "items") and isinstance(value, dict):
            value = _normalize(root, value)
        out[word] = value
    if "exclusiveMinimum" in schema and schema.get("type") == "integer":
        out["minimum"] = schema["exclusiveMinimum"] + 1
    return out
