"""Progress a tool reports mid-call (a child agentls saying what its agents do) → run events.

The text comes from outside the run (another process, its model, its tools): it is redacted like
every other event field, cut to one short line, and rate-limited per call, so a chatty or hostile
tool can neither flood the editor nor put a secret into what the editor shows. Each report becomes
a TOOL_STARTED event of the calling run (live only, never persisted) with `progress: true`, which
the editor shows as the call's current step (e.g. `mcp__agentls__delegate(→ reviewer: calling
read_file(path='src/app.py'))`). Past the rate, only the latest report waits for its turn, so
the step shown is the newest one.
"""

from __future__ import annotations

import asyncio
import time

from agentls.core.events import EventKind
from agentls.core.redact import redact_text
from agentls.core.run_state import EventListener, RunState

MAX_PROGRESS_CHARS = 200
# Per call: bursts of up to PROGRESS_BURST events, PROGRESS_RATE a second sustained.
PROGRESS_BURST = 8
PROGRESS_RATE = 2.0


def progress_line(message: str, limit: int = MAX_PROGRESS_CHARS) -> str:
    """One line of at most `limit` characters, secrets redacted (before the cut: a secret cut
    in half no longer looks like one)."""
    line = " ".join(redact_text(message[: limit * 8]).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class ProgressForwarder:
    """Call with each progress message of one tool call; `close()` when the call ends."""

    def __init__(
        self,
        run: RunState,
        tool: str,
        emit: EventListener,
        *,
        burst: int = PROGRESS_BURST,
        rate: float = PROGRESS_RATE,
        limit: int = MAX_PROGRESS_CHARS,
    ) -> None:
        self.run = run
        self.tool = tool
        self.emit = emit
        self.burst = burst
        self.rate = rate
        self.limit = limit
        self.turn = run.turn
        self.sent = 0
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self._held: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def __call__(self, message: str) -> None:
        if self._closed or not message:
            return
        self._refill()
        if self._tokens >= 1 and self._timer is None:
            self._send(message)
            return
        self._held = message  # only the latest waits: it says what is going on now
        if self._timer is None:
            wait = (1 - self._tokens) / self.rate
            self._timer = asyncio.get_running_loop().call_later(wait, self._flush)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now

    def _flush(self) -> None:
        self._timer = None
        held, self._held = self._held, None
        if held is not None and not self._closed:
            self._refill()
            self._send(held)

    def _send(self, message: str) -> None:
        self._tokens -= 1
        self.sent += 1
        line = progress_line(message, self.limit)
        self.emit(
            self.run.event(
                EventKind.TOOL_STARTED,
                data={
                    "turn": self.turn,
                    "tool": self.tool,
                    "arguments": f"→ {line}",
                    "progress": True,
                },
            )
        )

    def close(self) -> None:
        """The call ended: a report still held back is dropped (the call's outcome follows)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
