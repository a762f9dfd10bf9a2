"""The tool interface the turn loop calls: built-in workspace tools and MCP tools alike."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from agentls.core.llm import ToolSpec
from agentls.core.target import ProposedEdit

MAX_RESULT_CHARS = 20_000
# Seconds a tool call may take before the run gets an error instead of its result, for tools
# that do not set their own `call_time_limit` (an MCP tool may delegate to a whole child agent).
TOOL_TIME_LIMIT = 600.0

T = TypeVar("T")


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


# What a tool says about a call still in flight (one line, e.g. what a child agent is doing).
ProgressReport = Callable[[str], None]


class Tool(Protocol):
    """A tool the turn loop can call. It may also set `call_time_limit` (see call_with_limit),
    and offer `call_with_progress(arguments, report)` to report progress mid-call."""

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


class Deadline:
    """When work on a worker thread must stop: its time limit passed, or its caller gave up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        self._abandoned.set()

    @property
    def expired(self) -> bool:
        return self._abandoned.is_set() or time.monotonic() >= self._ends


async def off_loop(work: Callable[[], T], deadline: Deadline | None = None) -> T:
    """Run blocking `work` on a daemon thread and await its result.

    Not the loop's default executor: a worker that never returns (a stuck read) must not keep
    the process from exiting, and a cancelled await returns at once whatever the thread does
    (the thread is told through `deadline`, which its work checks).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def hand_over(outcome: Callable[[], None]) -> None:
        # RuntimeError: the loop closed meanwhile, so nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome)

    def target() -> None:
        try:
            value = work()
        except BaseException as exc:  # handed to the awaiting task, which decides
            error = exc
            hand_over(lambda: future.set_exception(error))
        else:
            hand_over(lambda: future.set_result(value))

    threading.Thread(target=target, name="agentls-tool", daemon=True).start()
    try:
        return await future
    finally:
        if deadline is not None and not future.done():
            deadline.abandon()


async def call_with_limit(
    tool: Tool,
    arguments: dict[str, Any],
    seconds: float | None = None,
    report: ProgressReport | None = None,
) -> ToolResult:
    """Call a tool with a time limit: the tool's own `call_time_limit`, else `seconds`, else
    TOOL_TIME_LIMIT. Past it the run gets an error result, not a hang.

    A tool whose `call_time_limit` is None bounds itself (run_command: its own time limit, and
    the wait for the user's answer must not be cut at the default; a child agentls: its read
    timeout). A tool that reports progress gets `report`.
    """
    default = TOOL_TIME_LIMIT if seconds is None else seconds
    limit = getattr(tool, "call_time_limit", default)
    with_progress = getattr(tool, "call_with_progress", None)
    if report is not None and with_progress is not None:
        work: Awaitable[ToolResult] = with_progress(arguments, report)
    else:
        work = tool.call(arguments)
    if limit is None:
        return await work
    try:
        return await asyncio.wait_for(work, limit)
    except TimeoutError:
        return ToolResult.error(
            f"{tool.spec.name} did not finish within {limit:g} s and was stopped; "
            "narrow the request (a smaller folder, a simpler pattern)"
        )
