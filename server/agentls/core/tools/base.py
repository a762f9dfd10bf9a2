"""The tool interface the turn loop calls: built-in workspace tools and MCP tools alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agentls.core.llm import ToolSpec
from agentls.core.target import ProposedEdit

MAX_RESULT_CHARS = 20_000


@dataclass
class ToolResult:
    content: str
    is_error: bool = False
    edits: list[ProposedEdit] = field(default_factory=list)
    # Extra fields for the tool call's audit event (run_command: the command, decision, outcome).
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(content=f"error: {message}", is_error=True)


class Tool(Protocol):
    @property
    def spec(self) -> ToolSpec: ...

    @property
    def read_only(self) -> bool: ...

    async def call(self, arguments: dict[str, Any]) -> ToolResult: ...


def truncate(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [truncated: {len(text) - limit} more characters]"


def summarize_arguments(arguments: dict[str, Any] | None, limit: int = 160) -> str:
    """A one-line summary of tool arguments for progress and the audit trail."""
    if not arguments:
        return ""
    parts = []
    for key, value in arguments.items():
        shown = value if isinstance(value, int | float | bool) else str(value)
        if isinstance(shown, str):
            shown = " ".join(shown.split())
            if len(shown) > 40:
                shown = shown[:39] + "…"
            shown = repr(shown)
        parts.append(f"{key}={shown}")
    line = ", ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"
