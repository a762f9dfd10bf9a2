"""A run's events as session updates: streamed answer, tool calls, proposed edits, token usage.

The runtime calls listeners synchronously on the event loop; updates are sent by one task per
prompt, in event order, so a slow client never blocks a run. Consecutive text chunks waiting in
the queue go out as one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp.schema import Cost, ToolCallLocation, UsageUpdate

from acp import helpers
from agentls.acp.anchors import disk_text, locate
from agentls.core.events import EventKind, RunEvent
from agentls.core.pricing import add_cost
from agentls.core.runtime import AgentRuntime
from agentls.core.target import ProposedEdit, apply_edit, slice_range

log = logging.getLogger(__name__)

# Sends one update (AgentSideConnection.session_update bound to the session).
Send = Callable[[Any], Awaitable[None]]
# Reads a file's current text (client buffer or disk); None when it does not exist.
Current = Callable[[Path], Awaitable[str | None]]

_TOOL_KINDS = {
    "read_file": "read",
    "list_files": "search",
    "search": "search",
    "propose_edit": "edit",
}


@dataclass
class _Text:
    text: str


@dataclass
class EditCall:
    """A proposed edit shown as an `edit` tool call, awaiting the user's consent."""

    tool_call_id: str
    edit: ProposedEdit
    path: Path
    old_text: str | None = None
    new_text: str = ""
    # The text the edit replaces, as the agent saw it (None: not known yet).
    replaced: str | None = None


@dataclass
class SessionCost:
    """Dollars the session's model calls have cost so far (`usage_update`'s `cost` is the
    session's total); None once a call's model had no price (the `prices` setting)."""

    usd: float | None = 0.0


@dataclass
class RunRenderer:
    """Renders the events of a prompt's runs (and their children) into session updates."""

    send: Send
    runtime: AgentRuntime
    current: Current
    stream_output: bool = True
    show_agent: bool = False
    runs: set[str] = field(default_factory=set)
    edits: dict[tuple[str, int], EditCall] = field(default_factory=dict)
    streamed: set[str] = field(default_factory=set)
    # The target's text as read for the prompt (the buffer), which edit-mode answers replace.
    seen: dict[Path, str] = field(default_factory=dict)
    cost: SessionCost = field(default_factory=SessionCost)

    def __post_init__(self) -> None:
        self._items: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._ids = itertools.count(1)
        self._open_tools: dict[tuple[str, str], list[str]] = {}
        self._budgets: dict[str, int | None] = {}
        self._modes: dict[str, str] = {}
        self._edit_counts: dict[str, int] = {}
        self._roots: set[str] = set()
        self._task = asyncio.create_task(self._drain(), name="agentls-acp-updates")

    def watch(self, run_id: str) -> None:
        """Render this run (a root of the prompt) and every run that names it as parent."""
        self.runs.add(run_id)
        self._roots.add(run_id)

    def open_call(self, run_id: str, tool: str) -> str | None:
        """The id of the tool call of `tool` in flight in a run (its latest), if any."""
        pending = self._open_tools.get((run_id, tool))
        return pending[-1] if pending else None

    def say(self, text: str) -> None:
        self._put(_Text(text))

    def on_event(self, event: RunEvent) -> None:
        if event.run_id not in self.runs:
            if event.parent_run_id not in self.runs:
                return
            self.runs.add(event.run_id)
        kind = event.kind
        if kind is EventKind.STARTED:
            self._budgets[event.run_id] = event.data.get("budget")
            self._modes[event.run_id] = str(event.data.get("mode"))
        elif kind is EventKind.OUTPUT_DELTA:
            if self.stream_output and event.run_id in self._roots:
                self.streamed.add(event.run_id)
                self._put(_Text(str(event.data.get("delta", ""))))
        elif kind is EventKind.TOOL_STARTED and event.data.get("progress"):
            self._tool_progress(event)
        elif kind is EventKind.TOOL_STARTED:
            self._tool_started(event)
        elif kind is EventKind.TOOL_CALL:
            self._tool_done(event)
        elif kind is EventKind.EDIT_PROPOSED:
            for artifact in event.artifacts:
                self._edit_proposed(event, ProposedEdit.model_validate(artifact))
        elif kind is EventKind.MODEL_CALL:
            # Summed here, in event order: the update goes out later with the total so far.
            self.cost.usd = add_cost(self.cost.usd, event.data.get("cost_usd"))
            self._put(lambda e=event, usd=self.cost.usd: self._usage(e, usd))

    def _title(self, event: RunEvent, text: str) -> str:
        return f"{event.agent}: {text}" if self.show_agent or event.depth else text

    def _tool_started(self, event: RunEvent) -> None:
        tool = str(event.data.get("tool", "tool"))
        arguments = str(event.data.get("arguments", ""))
        call_id = f"{event.run_id}:{next(self._ids)}"
        self._open_tools.setdefault((event.run_id, tool), []).append(call_id)
        kind = _TOOL_KINDS.get(tool, "other")  # MCP tools included: their effect is unknown
        self._put(
            helpers.start_tool_call(
                call_id,
                self._title(event, f"{tool}({arguments})"),
                kind=kind,  # type: ignore[arg-type]
                status="in_progress",
                raw_input={"tool": tool, "arguments": arguments},
            )
        )

    def _tool_progress(self, event: RunEvent) -> None:
        """A call in flight says what it does now (a child agentls): shown as the call's content."""
        pending = self._open_tools.get((event.run_id, str(event.data.get("tool", "tool"))))
        if not pending:
            return
        text = helpers.text_block(str(event.data.get("arguments", "")))
        self._put(helpers.update_tool_call(pending[-1], content=[helpers.tool_content(text)]))

    def _tool_done(self, event: RunEvent) -> None:
        tool = str(event.data.get("tool", "tool"))
        pending = self._open_tools.get((event.run_id, tool))
        if not pending:
            return
        call_id = pending.pop(0)
        failed = bool(event.data.get("is_error"))
        content = []
        if failed and event.error:
            content = [helpers.tool_content(helpers.text_block(event.error[:2000]))]
        self._put(
            helpers.update_tool_call(
                call_id,
                status="failed" if failed else "completed",
                content=content or None,
                raw_output={
                    "resultChars": event.data.get("result_chars"),
                    "durationMs": event.duration_ms,
                },
            )
        )

    def _edit_proposed(self, event: RunEvent, edit: ProposedEdit) -> None:
        index = self._edit_counts.get(event.run_id, 0)
        self._edit_counts[event.run_id] = index + 1
        call = EditCall(
            f"{event.run_id}:edit:{index}", edit, self.runtime.workspace / Path(edit.path)
        )
        self.edits[(event.run_id, index)] = call
        self._put(lambda: self._show_edit(event, call))

    async def _show_edit(self, event: RunEvent, call: EditCall) -> Any:
        # An edit-mode answer replaces the target as read for the prompt; tools read the disk.
        seen = self.seen.get(call.path) if self._modes.get(event.run_id) == "edit" else None
        if seen is None:
            seen = await asyncio.to_thread(disk_text, call.path)
        call.replaced = slice_range(seen or "", call.edit.range)
        current = await self.current(call.path)
        rng = locate(current or "", call.replaced, call.edit)
        base = current if rng is not None else seen
        call.old_text = base
        call.new_text = apply_edit(base or "", rng or call.edit.range, call.edit.new_text)
        title = call.edit.description or f"Edit {call.edit.path}"
        return helpers.start_tool_call(
            call.tool_call_id,
            self._title(event, f"{title} ({call.edit.path})"),
            kind="edit",
            status="pending",
            content=[helpers.tool_diff_content(str(call.path), call.new_text, call.old_text)],
            locations=[ToolCallLocation(path=str(call.path), line=call.edit.range.start.line)],
            raw_input={"path": call.edit.path, "agent": call.edit.agent},
        )

    async def _usage(self, event: RunEvent, usd: float | None) -> UsageUpdate:
        """Usage against the tightest limit that applies: the run's, the agent's or the total;
        `cost` is the session's dollars so far (absent once a call had no price)."""
        snapshot = await asyncio.to_thread(self.runtime.budgeter.snapshot)
        run_used = event.usage.total
        scopes: list[tuple[str, int, int | None]] = [
            ("run", run_used, self._budgets.get(event.run_id))
        ]
        agent = snapshot.agents.get(event.agent)
        if agent is not None:
            scopes.append(("agent", agent.used, agent.limit))
        scopes.append(("total", snapshot.used, snapshot.limit))
        limited = [s for s in scopes if s[2] is not None]
        name, used, size = (
            min(limited, key=lambda s: (s[2] or 0) - s[1]) if limited else ("run", run_used, None)
        )
        return UsageUpdate(
            session_update="usage_update",
            used=used,
            size=size if size is not None else used,
            cost=Cost(amount=usd, currency="USD") if usd is not None else None,
            field_meta={
                "agentls": {
                    "scope": name,
                    "runId": event.run_id,
                    "agent": event.agent,
                    "run": {"used": run_used, "limit": self._budgets.get(event.run_id)},
                    "total": {
                        "used": snapshot.used,
                        "limit": snapshot.limit,
                        "remaining": snapshot.remaining,
                    },
                }
            },
        )

    def update(self, update: Any) -> None:
        self._put(update)

    def _put(self, item: Any) -> None:
        self._items.append(item)
        self._idle.clear()
        self._wake.set()

    async def _drain(self) -> None:
        while True:
            if not self._items:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._items.popleft()
            if item is None:
                self._idle.set()
                return
            try:
                if isinstance(item, _Text):
                    text = item.text
                    while self._items and isinstance(self._items[0], _Text):
                        text += self._items.popleft().text
                    if text:
                        await self.send(helpers.update_agent_message_text(text))
                    continue
                update = await item() if callable(item) else item
                if update is not None:
                    await self.send(update)
            except Exception:  # a client that left or refused an update never stops the run
                log.warning("session update not sent", exc_info=True)

    async def flush(self) -> None:
        """Wait until every update queued so far has been sent."""
        if not self._task.done():
            await self._idle.wait()

    async def aclose(self) -> None:
        if not self._task.done():
            self._put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
