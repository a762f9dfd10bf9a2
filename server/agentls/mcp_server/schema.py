"""Tool input schemas in the subset of JSON Schema that strict hosts and model providers accept.

Pydantic writes nested models as `$defs` + `$ref`, `gt=0` as `exclusiveMinimum`, optional
arguments as `anyOf [T, null]` with `default: null`, and a `title` on every node. Hosts and
providers with strict schema rules (OpenAI's strict mode, Gemini's function declarations) reject
or must rewrite some of these, so the schema a tool publishes is rewritten once, here:

- every `$ref` is inlined and `$defs` dropped;
- `exclusiveMinimum: n` / `exclusiveMaximum: n` on an integer become `minimum: n+1` / `maximum: n-1`;
- an optional argument (`anyOf [T, null]`) is published as `T`: leaving it out means the default;
- `title` and `default` are dropped (the description says what leaving an argument out means);
- every object says `additionalProperties: false` (unknown arguments are refused, see
  `registration.py`).

What the server accepts is unchanged: pydantic still validates the arguments.
"""

from __future__ import annotations

import copy
from typing import Any

_DROPPED = frozenset({"title", "default", "$defs", "definitions"})


def portable_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (pydantic's) rewritten into the portable subset described above."""
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    rewritten = _rewrite(copy.deepcopy(schema), definitions, ())
    assert isinstance(rewritten, dict)
    return rewritten


def _rewrite(node: Any, definitions: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if (ref := node.get("$ref")) is not None:
        name = str(ref).rsplit("/", 1)[-1]
        if name in seen or name not in definitions:
            raise ValueError(f"cannot inline {ref!r} (recursive or unknown) in a tool schema")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _rewrite({**definitions[name], **siblings}, definitions, (*seen, name))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {k: _rewrite(v, definitions, seen) for k, v in value.items()}
        else:
            out[key] = _rewrite(value, definitions, seen)
    out = _without_null_branch(out)
    _inclusive_bounds(out)
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def _without_null_branch(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf [T, {type: null}]` → T, keeping the node's own description."""
    branches = node.get("anyOf")
    if not isinstance(branches, list):
        return node
    typed = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
    if len(typed) != 1 or len(typed) == len(branches):
        return node
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    return {**typed[0], **merged}


def _inclusive_bounds(node: dict[str, Any]) -> None:
    if node.get("type") != "integer":
        return
    if (low := node.pop("exclusiveMinimum", None)) is not None:
        node["minimum"] = max(int(low) + 1, node.get("minimum", int(low) + 1))
    if (high := node.pop("exclusiveMaximum", None)) is not None:
        node["maximum"] = min(int(high) - 1, node.get("maximum", int(high) - 1))
