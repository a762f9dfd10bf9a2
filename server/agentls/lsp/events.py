"""Renders the runtime's event stream for the editor: work-done progress per run, `agentls/event`
(mirrored to window/logMessage), coalesced `agentls/output`, and `agentls/budget` snapshots.

Events are sent in the order they happen. One that carries a lot of text (a run's answer, a file a
tool read) is redacted on a worker thread and the events after it wait for it; commands await
`settled()` before answering, so a run's events still arrive before its result.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from agentls.core.audit import redact_event
from agentls.core.events import EventKind, RunEvent
from agentls.lsp import wire
from agentls.lsp.progress import RunProgress

if TYPE_CHECKING:
    from agentls.core.budget import BudgetSnapshot
    from agentls.core.runtime import AgentRuntime
    from agentls.lsp.server import AgentLanguageServer

log = logging.getLogger("agentls.lsp")

# At most 20 agentls/output notifications per second per run, in any one-second window (timer
# jitter would let exactly 50 ms fit 21 flushes into one); deltas in between are joined.
OUTPUT_INTERVAL = 0.055
# Redaction costs about 1 ms per KB of text (a run's whole answer, a file a tool read): an event
# carrying this much is redacted on a worker thread, so the loop never stops that long.
OFF_LOOP_CHARS = 4096


def _text_size(e: RunEvent) -> int:
    """Characters of text an event carries (what redaction scans)."""
    size = 0
    stack: list[Any] = [e.data, e.artifacts, e.error]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return size


def budget_payload(snapshot: BudgetSnapshot, user: str | None = None) -> dict[str, Any]:
    """`user`: whose calls this server makes, so an editor knows which user's limits bind it."""
    return {
        "user": user,
        "used": snapshot.used,
        "limit": snapshot.limit,
        "remaining": snapshot.remaining,
        "reserved": snapshot.reserved,
        "usage": wire.usage(snapshot.usage),
        "agents": {
            name: {
                "used": s.used,
                "limit": s.limit,
                "remaining": s.remaining,
                "reserved": s.reserved,
            }
            for name, s in snapshot.agents.items()
        },
        # A user's, a period's and dollar limits (core/budget_limits.py), in their own units.
        "limits": [
            {
                "scope": limit.scope,
                "appliesTo": limit.applies_to,
                "name": limit.name,
                "unit": limit.unit,
                "period": limit.period,
                "window": limit.window,
                "limit": limit.limit,
                "used": limit.used,
                "reserved": limit.reserved,
                "remaining": limit.remaining,
            }
            for limit in snapshot.limits
        ],
    }


# Each runtime's bridge to the editor (`attach`), for as long as the runtime lives.
_bridges: weakref.WeakKeyDictionary[AgentRuntime, EventBridge] = weakref.WeakKeyDictionary()


def attach(ls: AgentLanguageServer, runtime: AgentRuntime) -> EventBridge:
    """Send `runtime`'s events and budget to the editor from now on."""
    bridge = _bridges[runtime] = EventBridge(ls, runtime)
    return bridge


def bridge_of(runtime: AgentRuntime) -> EventBridge:
    """The bridge `attach` made for `runtime` (every runtime the server builds has one)."""
    return _bridges[runtime]


class EventBridge:
    def __init__(self, ls: AgentLanguageServer, runtime: AgentRuntime) -> None:
        self.ls = ls
        self.runtime = runtime
        self.progress = RunProgress(ls, runtime.cancel)
        self._outbox: dict[str, tuple[str, list[str]]] = {}
        self._flush_scheduled: set[str] = set()
        self._pending: deque[RunEvent] = deque()
        self._draining: asyncio.Future[None] | None = None
        runtime.subscribe(self.on_event)
        runtime.budgeter.add_listener(self.on_budget)

    async def begin_progress(self, run_id: str, title: str) -> None:
        """Create a cancellable work-done progress for a run, when the client supports it."""
        await self.progress.begin(run_id, title)

    def end_progress(self, run_id: str, message: str) -> None:
        """End the run's progress with `message`, unless it has ended already."""
        self.progress.end(run_id, message)

    def on_event(self, e: RunEvent) -> None:
        if e.kind is EventKind.WAITING:  # what a silence is; progress here is driven by steps
            return
        try:
            if e.kind is EventKind.OUTPUT_DELTA:
                self._queue_output(e)
                return
            if self._pending or _text_size(e) >= OFF_LOOP_CHARS:
                # Redacted on a worker thread; what follows waits its turn, so order is kept.
                self._pending.append(e)
                if self._draining is None or self._draining.done():
                    self._draining = asyncio.ensure_future(self._drain())
                    self.ls.keep(self._draining)
                return
            self._send(e, None if e.kind is EventKind.TOOL_STARTED else redact_event(e))
        except Exception:  # rendering must never break a run
            log.exception("failed to send event %s", e.kind)

    async def _drain(self) -> None:
        while self._pending:
            e = self._pending[0]
            try:
                safe = None
                if e.kind is not EventKind.TOOL_STARTED:
                    large = _text_size(e) >= OFF_LOOP_CHARS
                    safe = await asyncio.to_thread(redact_event, e) if large else redact_event(e)
                self._send(e, safe)
            except Exception:
                log.exception("failed to send event %s", e.kind)
            finally:
                self._pending.popleft()

    async def settled(self) -> None:
        """Wait until every event emitted so far has reached the editor."""
        while self._draining is not None and not self._draining.done():
            await asyncio.shield(self._draining)

    def _send(self, e: RunEvent, safe: RunEvent | None) -> None:
        """An event's notifications; `safe` is its redacted copy (None: progress only)."""
        if safe is None:
            self.progress.report(e)
            return
        if e.is_terminal or e.kind is EventKind.OUTPUT:
            self._flush(e.run_id)
        # The editor's log is as durable as the audit store: the same redaction applies.
        self.ls.protocol.notify("agentls/event", wire.event(safe, self.runtime.workspace))
        self.ls.window_log_message(
            types.LogMessageParams(type=types.MessageType.Info, message=wire.log_line(safe))
        )
        self.progress.report(e)

    def _queue_output(self, e: RunEvent) -> None:
        _, pieces = self._outbox.setdefault(e.run_id, (e.agent, []))
        pieces.append(str(e.data.get("delta", "")))
        if e.run_id not in self._flush_scheduled:
            self._flush_scheduled.add(e.run_id)
            asyncio.get_running_loop().call_later(OUTPUT_INTERVAL, self._flush, e.run_id)

    def _flush(self, run_id: str) -> None:
        self._flush_scheduled.discard(run_id)
        entry = self._outbox.pop(run_id, None)
        if not entry or not entry[1]:
            return
        agent, pieces = entry
        self.ls.protocol.notify(
            "agentls/output", {"runId": run_id, "agent": agent, "delta": "".join(pieces)}
        )

    def on_budget(self, snapshot: BudgetSnapshot) -> None:
        try:
            self.ls.protocol.notify(
                "agentls/budget", budget_payload(snapshot, self.runtime.budgeter.user)
            )
        except Exception:
            log.exception("failed to send the budget")
