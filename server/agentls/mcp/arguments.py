"""Turns the MCP tools' arguments into engine values; every error names the argument at fault."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from agentls.core.bounds import MAX_TOKENS
from agentls.core.definitions import AgentDefinition, UnknownAgentError
from agentls.core.registry import AgentRegistry
from agentls.core.target import Target, TextRange

# A budget is checked when the call's arguments are (the SDK names `budget` and the bound): the
# schema a client lists says the range too, and nothing past it reaches the ledger.
BudgetArg = Annotated[
    int | None,
    Field(gt=0, le=MAX_TOKENS, description="token budget for the run (default: the agent's own)"),
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
