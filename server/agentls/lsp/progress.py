"""Work-done progress (`$/progress`): each run's own, created cancellable and reported from its
events, and a parallel group's parent progress ("3/5 done", tokens) beside them.

A run's progress is begun before the run starts (its title names the agent and the goal); turns,
tokens and the tool being called are reported as the run's events arrive (events.py hands them
here); it ends with the status, the tokens and why it failed or stopped. Cancelling it in the
editor cancels the run; cancelling a group's progress cancels every run of the group.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from lsprotocol import types

from agentls.core.events import EventKind, RunEvent

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

log = logging.getLogger("agentls.lsp")


def _supported(ls: AgentLanguageServer) -> bool:
    window = ls.client_capabilities.window
    return bool(window and window.work_done_progress)


class RunProgress:
    """The progress of each run of one folder's runtime, by run id."""

    def __init__(self, ls: AgentLanguageServer, cancel: Callable[[str], object]) -> None:
        self.ls = ls
        self._cancel = cancel
        self._tokens: dict[str, str] = {}

    async def begin(self, run_id: str, title: str) -> None:
        """Create a cancellable work-done progress for a run, when the client supports it."""
        if not _supported(self.ls):
            return
        token = f"agentls-{uuid.uuid4().hex}"
        try:
            await self.ls.work_done_progress.create_async(token)
        except Exception as exc:  # the client refused: the run goes on without a progress bar
            log.warning("work-done progress refused: %s", exc)
            return
        self._tokens[run_id] = token
        self.ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=title, cancellable=True, message="starting")
        )
        cancelled = self.ls.work_done_progress.tokens.get(token)
        if cancelled is not None:
            cancelled.add_done_callback(lambda f: self._cancel(run_id) if f.cancelled() else None)

    def end(self, run_id: str, message: str) -> None:
        """End the run's progress with `message`, unless it has ended already."""
        token = self._tokens.pop(run_id, None)
        if token is None:
            return
        self.ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
        self.ls.work_done_progress.tokens.pop(token, None)

    def report(self, e: RunEvent) -> None:
        """What the run's event says, as its progress's message (its end, when it is the last)."""
        token = self._tokens.get(e.run_id)
        if token is None:
            return
        if e.is_terminal:
            ending = f"{e.status.value} · {e.usage.total:,} tokens"
            # Why it failed or stopped, and what it must tell (the embedded model was used, an
            # over-report), where the user is looking.
            for note in ([e.error] if e.error else []) + list(e.data.get("warnings") or []):
                ending += f" · {note if len(note) <= 400 else note[:399] + '…'}"
            self.end(e.run_id, ending)
            return
        message = None
        if e.kind is EventKind.MODEL_CALL:
            message = f"turn {e.data.get('turn')} · {e.usage.total:,} tokens"
        elif e.kind is EventKind.TOOL_STARTED:
            # The tool being called now; it is reported again (with its outcome) as TOOL_CALL.
            message = (
                f"turn {e.data.get('turn')} · {e.usage.total:,} tokens · "
                f"{e.data.get('tool')}({e.data.get('arguments', '')})"
            )
        elif e.kind is EventKind.EDIT_PROPOSED:
            message = f"edit proposed · {e.usage.total:,} tokens"
        if message:
            self.ls.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))


async def begin_group(
    ls: AgentLanguageServer, title: str, cancel: Callable[[], object]
) -> str | None:
    """A parallel group's parent progress, cancellable (cancelling it calls `cancel`); its token,
    or None when the client has no work-done progress or refused it."""
    if not _supported(ls):
        return None
    token = f"agentls-group-{uuid.uuid4().hex}"
    try:
        await ls.work_done_progress.create_async(token)
    except Exception:
        return None
    ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=True))
    future = ls.work_done_progress.tokens.get(token)
    if future is not None:
        future.add_done_callback(lambda f: cancel() if f.cancelled() else None)
    return token


def report_group(ls: AgentLanguageServer, token: str, done: int, total: int, tokens: int) -> None:
    ls.work_done_progress.report(
        token,
        types.WorkDoneProgressReport(
            message=f"{done}/{total} done · {tokens:,} tokens",
            percentage=int(100 * done / max(total, 1)),
        ),
    )


def end_group(ls: AgentLanguageServer, token: str, message: str) -> None:
    ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
    ls.work_done_progress.tokens.pop(token, None)
