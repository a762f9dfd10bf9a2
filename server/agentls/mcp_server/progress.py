"""Run events → MCP progress notifications for the tool call that started the runs.

Every step is reported (start, each turn, each tool call with its redacted arguments, edits, the
end), and streamed output at most every OUTPUT_INTERVAL seconds per run: a delegating agentls
reads these as signs of life (its read timeout) and shows them in its own run.

Between steps a run can be silent for a long time: queued behind `max_parallel`, waiting for
tokens that other runs hold (the budget), waiting for the model's first token. Hosts commonly cut a tool call
that sends nothing for 60 s, so after HEARTBEAT_SECONDS without a notification one is sent that
says what each run waits for and for how long (`explain: waiting for the model's first token,
turn 1, 45 s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from agentls.core.events import EventKind, RunEvent

# Seconds between two "writing" notifications of one run (every delta would flood the client).
OUTPUT_INTERVAL = 2.0

# Seconds of silence after which a notification says what the runs wait for. Well under the 60 s
# that hosts commonly allow a tool call without a sign of life (docs/mcp.md, Host timeouts).
HEARTBEAT_SECONDS = 15.0

# A heartbeat names at most this many runs (delegate_parallel runs up to 64).
HEARTBEAT_RUNS = 4

# The kinds worth a notification each time.
_REPORTED = frozenset(
    {
        EventKind.STARTED,
        EventKind.MODEL_CALL,
        EventKind.TOOL_STARTED,
        EventKind.TOOL_CALL,
        EventKind.EDIT_PROPOSED,
        EventKind.FINISHED,
        EventKind.FAILED,
        EventKind.CANCELLED,
        EventKind.BUDGET_EXCEEDED,
    }
)


def describe(event: RunEvent) -> str:
    """One line a host shows next to the tool call: agent, step, tokens so far."""
    data = event.data
    step = event.kind.value
    if event.kind is EventKind.MODEL_CALL:
        step = f"turn {data.get('turn', '?')} done"
    elif event.kind is EventKind.TOOL_STARTED and data.get("progress"):
        step = f"{data.get('tool')} {data.get('arguments', '')}"  # what a child of it reports
    elif event.kind is EventKind.TOOL_STARTED:
        step = f"calling {data.get('tool')}({data.get('arguments', '')})"
    elif event.kind is EventKind.TOOL_CALL:
        step = f"called {data.get('tool')}"
    elif event.kind is EventKind.OUTPUT_DELTA:
        step = f"writing (turn {data.get('turn', '?')})"
    elif event.kind is EventKind.STARTED:
        step = f"started: {event.goal[:80]}"
    elif event.is_terminal and event.error:
        step = f"{event.kind.value}: {event.error[:120]}"
    return f"{event.agent}: {step} ({event.usage.total:,} tokens)"


@dataclass
class _Wait:
    """What one run in flight is doing, as far as its events tell, and since when."""

    agent: str
    doing: str
    since: float
    tokens: int = 0


def _doing(event: RunEvent) -> str | None:
    """The run's state after `event`, in words; None: unchanged."""
    data, turn = event.data, event.data.get("turn", "?")
    if event.kind is EventKind.STARTED:
        return "starting"
    if event.kind is EventKind.WAITING and data.get("for") == "budget":
        return f"waiting for the budget to grant its tokens, turn {turn}"
    if event.kind is EventKind.WAITING:
        return f"waiting for the model's first token, turn {turn}"
    if event.kind is EventKind.OUTPUT_DELTA:
        return f"the model is writing, turn {turn}"
    if event.kind is EventKind.TOOL_STARTED and not data.get("progress"):
        return f"running {data.get('tool')}"
    if event.kind in (EventKind.TOOL_CALL, EventKind.MODEL_CALL):
        return "between turns"
    return None


class _Heartbeat:
    """The runs of one tool call, for the heartbeat line."""

    def __init__(self, expected_runs: int) -> None:
        self.expected = expected_runs
        self.waits: dict[str, _Wait] = {}
        self.seen: set[str] = set()

    def update(self, event: RunEvent) -> None:
        self.seen.add(event.run_id)
        if event.is_terminal:
            self.waits.pop(event.run_id, None)
            return
        doing = _doing(event)
        wait = self.waits.get(event.run_id)
        if wait is None:
            wait = self.waits[event.run_id] = _Wait(
                event.agent, doing or "starting", time.monotonic()
            )
        elif doing is not None and doing != wait.doing:
            wait.doing, wait.since = doing, time.monotonic()
        wait.tokens = event.usage.total

    def line(self) -> str:
        now = time.monotonic()
        parts = [
            f"{w.agent}: {w.doing}, {now - w.since:.0f} s ({w.tokens:,} tokens)"
            for w in list(self.waits.values())[:HEARTBEAT_RUNS]
        ]
        if len(self.waits) > HEARTBEAT_RUNS:
            parts.append(f"{len(self.waits) - HEARTBEAT_RUNS} more runs in flight")
        if (queued := self.expected - len(self.seen)) > 0:
            parts.append(f"{queued} queued for a free slot (max_parallel)")
        return "still working: " + ("; ".join(parts) or "starting")


@contextlib.asynccontextmanager
async def progress_reporter(
    report: Callable[[float, float | None, str | None], object],
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
    expected_runs: int = 1,
) -> AsyncIterator[Callable[[RunEvent], None]]:
    """A run listener whose events are sent, in order, by `report` (awaited off the listener).

    The runtime calls listeners synchronously; sending is async, so events queue and one task
    sends them. Whatever is queued when the block ends is still sent. After `heartbeat` seconds
    with nothing sent, a line says what the runs wait for (`expected_runs` not yet seen count
    as queued).
    """
    queue: asyncio.Queue[RunEvent | str | None] = asyncio.Queue()
    step = 0
    last_output: dict[str, float] = {}
    runs = _Heartbeat(expected_runs)
    sent_at = time.monotonic()

    def listener(event: RunEvent) -> None:
        runs.update(event)
        if event.kind is EventKind.OUTPUT_DELTA:
            now = time.monotonic()
            if now - last_output.get(event.run_id, float("-inf")) < OUTPUT_INTERVAL:
                return
            last_output[event.run_id] = now
        elif event.kind not in _REPORTED:
            return
        queue.put_nowait(event)

    async def pump() -> None:
        nonlocal step, sent_at
        while (item := await queue.get()) is not None:
            step += 1
            sent_at = time.monotonic()
            sent = report(float(step), None, item if isinstance(item, str) else describe(item))
            if asyncio.iscoroutine(sent) or isinstance(sent, asyncio.Future):
                with contextlib.suppress(Exception):  # a gone client must not fail the run
                    await sent

    async def beat() -> None:
        while True:
            # A timer, not a synchronisation: it wakes when the silence would reach `heartbeat`.
            await asyncio.sleep(max(0.0, sent_at + heartbeat - time.monotonic()))
            if time.monotonic() - sent_at >= heartbeat and queue.empty():
                queue.put_nowait(runs.line())
                await asyncio.sleep(heartbeat)  # the pump stamps sent_at when it sends it

    task = asyncio.create_task(pump())
    beating = asyncio.create_task(beat())
    try:
        yield listener
    except BaseException:
        task.cancel()  # cancelled or failed: nobody waits for more progress
        beating.cancel()
        raise
    beating.cancel()
    queue.put_nowait(None)
    await task
