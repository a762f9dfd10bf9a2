"""Run events → MCP progress notifications for the tool call that started the runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from agentls.core.events import EventKind, RunEvent

# The few kinds worth a notification; output deltas would flood the client.
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
    elif event.kind in (EventKind.TOOL_STARTED, EventKind.TOOL_CALL):
        step = (
            f"{'calling' if event.kind is EventKind.TOOL_STARTED else 'called'} {data.get('tool')}"
        )
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

    def listener(event: RunEvent) -> None:
        if event.kind in _REPORTED:
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
