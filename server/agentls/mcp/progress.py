"""Run events → MCP progress notifications for the tool call that started the runs.

Every step is reported (start, each turn, each tool call with its redacted arguments, edits, the
end), and streamed output at most every OUTPUT_INTERVAL seconds per run: a delegating agentls
reads these as signs of life (its read timeout) and shows them in its own run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from agentls.core.events import EventKind, RunEvent

# Seconds between two "writing" notifications of one run (every delta would flood the client).
OUTPUT_INTERVAL = 2.0

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


@contextlib.asynccontextmanager
async def progress_reporter(
    report: Callable[[float, float | None, str | None], object],
) -> AsyncIterator[Callable[[RunEvent], None]]:
    """A run listener whose events are sent, in order, by `report` (awaited off the listener).

    The runtime calls listeners synchronously; sending is async, so events queue and one task
    sends them. Whatever is queued when the block ends is still sent.
    """
    queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
    step = 0
    last_output: dict[str, float] = {}

    def listener(event: RunEvent) -> None:
        if event.kind is EventKind.OUTPUT_DELTA:
            now = time.monotonic()
            if now - last_output.get(event.run_id, float("-inf")) < OUTPUT_INTERVAL:
                return
            last_output[event.run_id] = now
        elif event.kind not in _REPORTED:
            return
        queue.put_nowait(event)

    async def pump() -> None:
        nonlocal step
        while (event := await queue.get()) is not None:
            step += 1
            sent = report(float(step), None, describe(event))
            if asyncio.iscoroutine(sent) or isinstance(sent, asyncio.Future):
                with contextlib.suppress(Exception):  # a gone client must not fail the run
                    await sent

    task = asyncio.create_task(pump())
    try:
        yield listener
    except BaseException:
        task.cancel()  # cancelled or failed: nobody waits for more progress
        raise
    queue.put_nowait(None)
    await task
