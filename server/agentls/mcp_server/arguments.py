"""Turns the MCP tools' arguments into engine values; every error names the argument at fault."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails

from agentls.core.bounds import MAX_TOKENS
from agentls.core.definitions import AgentDefinition, UnknownAgentError
from agentls.core.registry import AgentRegistry
from agentls.core.target import Target, TextRange

# A budget is checked when the call's arguments are (the SDK names `budget` and the bound): the
# schema a client lists says the range too, and nothing past it reaches the ledger.
BudgetArg = Annotated[
    int | None,
    Field(gt=0, le=MAX_TOKENS, description="token budget for the run; default: the agent's own"),
]

# A target larger than this is refused before it is read whole (the runtime takes 60k characters).
MAX_TARGET_BYTES = 4_000_000


class ArgumentError(ToolError):
    """A bad tool argument: the message starts with the argument's name."""

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}")
        self.argument = argument


def parse_lines(spec: str, argument: str = "lines") -> tuple[int, int]:
    """'A-B' or 'A' (1-based, inclusive) → (A, B)."""
    try:
        first_s, _, last_s = spec.strip().partition("-")
        first = int(first_s)
        last = int(last_s) if last_s else first
    except ValueError:
        raise ArgumentError(
            argument, f"{spec!r} is not a line range; expected A-B with line numbers, e.g. 10-24"
        ) from None
    if first < 1 or last < first:
        raise ArgumentError(argument, f"{spec!r}: lines start at 1 and B must not come before A")
    return first, last


def agent_of(registry: AgentRegistry, name: str, argument: str = "agent") -> AgentDefinition:
    try:
        return registry.get(name).definition
    except UnknownAgentError as exc:
        raise ArgumentError(argument, str(exc)) from None


async def target_of(workspace: Path, file: str, lines: str | None, prefix: str = "") -> Target:
    """The file (workspace-relative or absolute inside the workspace), narrowed to `lines`."""
    file_arg, lines_arg = f"{prefix}file", f"{prefix}lines"
    if not file.strip():
        raise ArgumentError(file_arg, "empty; give a path relative to the workspace")
    path = (workspace / file).resolve()
    if path != workspace and workspace not in path.parents:
        raise ArgumentError(file_arg, f"{file!r} is outside the workspace {workspace}")

    def read() -> str:
        if not path.is_file():
            raise ArgumentError(file_arg, f"no such file {file!r} in the workspace {workspace}")
        if path.stat().st_size > MAX_TARGET_BYTES:
            raise ArgumentError(file_arg, f"{file!r} is too large; give a line range of it")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ArgumentError(file_arg, f"{file!r} is not a UTF-8 text file") from None

    text = await asyncio.to_thread(read)
    if lines is None:
        return Target(path=path, text=text)
    first, last = parse_lines(lines, lines_arg)
    try:
        rng = TextRange.whole_lines(first, last, text)
    except ValueError as exc:
        raise ArgumentError(lines_arg, str(exc)) from None
    return Target(path=path, range=rng, text=text)


def schema_error(exc: ValidationError, schema: dict[str, Any]) -> str:
    """Arguments the input schema refused, in the style of the checks above: each names the
    argument, what was wrong, and the bound or the kind of value it takes (pydantic's own text
    carries a documentation URL and the model's name, which mean nothing to a host)."""
    return "; ".join(_one_error(error, schema) for error in exc.errors(include_url=False))


def _one_error(error: ErrorDetails, schema: dict[str, Any]) -> str:
    loc = error["loc"]
    where = _argument_path(loc)
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    node = _schema_at(schema, loc)
    about = node.get("description") if node else None
    if kind == "missing":
        problem = "missing"
    elif kind == "extra_forbidden":
        parent = _schema_at(schema, loc[:-1]) or {}
        names = ", ".join(parent.get("properties", {}))
        return f"{where}: no such argument; the arguments are {names}"
    elif kind in ("greater_than", "greater_than_equal"):
        low = node.get("minimum") if node else None
        problem = f"{value!r} is too small; the least is {_bound(low, ctx)}"
    elif kind in ("less_than", "less_than_equal"):
        high = node.get("maximum") if node else None
        problem = f"{value!r} is too large; the most is {_bound(high, ctx)}"
    elif kind == "too_short":
        problem = f"{ctx.get('actual_length')} items; give at least {ctx.get('min_length')}"
    elif kind == "too_long":
        problem = f"{ctx.get('actual_length')} items; give at most {ctx.get('max_length')}"
    elif kind.startswith("int_"):
        problem = f"{value!r} is not a whole number"
    elif kind.startswith("string_"):
        problem = f"{value!r} is not text"
    elif kind.startswith("bool_"):
        problem = f"{value!r} is not true or false"
    elif kind in ("list_type", "model_type", "dict_type", "model_attributes_type"):
        expected = "a list" if kind == "list_type" else "an object"
        problem = f"expected {expected}, got {type(value).__name__}"
    else:
        problem = error["msg"]
    return f"{where}: {problem}" + (f" ({about})" if about else "")


def _bound(published: Any, ctx: dict[str, Any]) -> Any:
    """The bound as the published schema states it (`minimum: 1`, not pydantic's `gt: 0`)."""
    return published if published is not None else next(iter(ctx.values()), "?")


def _argument_path(loc: tuple[int | str, ...]) -> str:
    """('tasks', 1, 'file') → 'tasks[1].file', as the hand-written checks name arguments."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "arguments"


def _schema_at(schema: dict[str, Any], loc: tuple[int | str, ...]) -> dict[str, Any] | None:
    node: Any = schema
    for part in loc:
        if not isinstance(node, dict):
            return None
        node = node.get("items") if isinstance(part, int) else node.get("properties", {}).get(part)
    return node if isinstance(node, dict) else None
