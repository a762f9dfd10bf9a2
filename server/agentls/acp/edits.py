"""Edits are written only with the user's consent: `session/request_permission` for each proposed
edit (allow once, always allow in this session, reject), then the client's `fs/write_text_file`
when it offers it (so its open buffer stays right), else the disk, keeping line endings and mode.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acp.schema import PermissionOption, ToolCallLocation, ToolCallUpdate

from acp import RequestError, helpers
from agentls.acp.anchors import locate
from agentls.acp.updates import EditCall, RunRenderer
from agentls.core.target import ProposedEdit, apply_edit, offset_of

ALLOW_ONCE = "allow-once"
ALLOW_ALWAYS = "allow-always"
REJECT = "reject"
# Reading or writing a file through the editor is quick; a silent editor must not hang a turn.
CLIENT_TIMEOUT = 30.0

OPTIONS = [
    PermissionOption(option_id=ALLOW_ONCE, name="Apply this edit", kind="allow_once"),
    PermissionOption(
        option_id=ALLOW_ALWAYS, name="Always apply edits in this session", kind="allow_always"
    ),
    PermissionOption(option_id=REJECT, name="Reject", kind="reject_once"),
]


@dataclass
class FileAccess:
    """Reads and writes files as the user sees them: through the client when it offers fs."""

    conn: Any  # acp AgentSideConnection
    session_id: str
    client_reads: bool
    client_writes: bool

    async def read(self, path: Path) -> str:
        """The file's text with LF line ends (the client's buffer when it offers reads)."""
        text, _ = await self.read_raw(path)
        return text

    async def read_raw(self, path: Path) -> tuple[str, bool]:
        """(text with LF line ends, whether the file uses CRLF)."""
        if self.client_reads:
            try:
                response = await asyncio.wait_for(
                    self.conn.read_text_file(session_id=self.session_id, path=str(path)),
                    CLIENT_TIMEOUT,
                )
            except TimeoutError:
                raise OSError(
                    f"the editor did not answer fs/read_text_file for {path} "
                    f"within {CLIENT_TIMEOUT:.0f} s"
                ) from None
            except RequestError as exc:
                raise OSError(f"the editor could not read {path}: {exc} {exc.data or ''}") from None
            raw = response.content
        else:
            raw = await asyncio.to_thread(_read_disk, path)
        crlf = "\r\n" in raw
        return raw.replace("\r\n", "\n"), crlf

    async def current(self, path: Path) -> str | None:
        try:
            return await self.read(path)
        except Exception:  # a file about to be created, or one the client cannot read
            return None

    async def write(self, path: Path, text: str) -> None:
        if self.client_writes:
            try:
                await asyncio.wait_for(
                    self.conn.write_text_file(
                        session_id=self.session_id, path=str(path), content=text
                    ),
                    CLIENT_TIMEOUT,
                )
            except TimeoutError:
                raise OSError(
                    f"the editor did not answer fs/write_text_file within {CLIENT_TIMEOUT:.0f} s"
                ) from None
        else:
            await asyncio.to_thread(write_disk, path, text)


def _read_disk(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def write_disk(path: Path, text: str) -> None:
    """Write atomically (temp file + rename), keeping the file's permission bits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    tmp = path.with_name(f".{path.name}.agentls-tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass
class EditConsent:
    """The EditApplier of runs started from an ACP session."""

    conn: Any
    session: Any  # sessions.Session
    files: FileAccess
    renderer: RunRenderer
    run_id: str

    async def __call__(self, edits: list[ProposedEdit]) -> list[tuple[bool, str | None]]:
        await self.renderer.flush()  # the diffs are on screen before the question
        calls = [
            self.renderer.edits.get((self.run_id, i))
            or EditCall(f"{self.run_id}:edit:{i}", e, self.session.workspace / e.path)
            for i, e in enumerate(edits)
        ]
        allowed: list[tuple[bool, str | None]] = []
        for call in calls:
            allowed.append(await self._ask(call))
        by_path: dict[Path, list[int]] = defaultdict(list)
        for i, call in enumerate(calls):
            if allowed[i][0]:
                by_path[call.path].append(i)
        outcomes = list(allowed)
        for path, indexes in by_path.items():
            reason = await self._write(path, [calls[i] for i in indexes])
            for i in indexes:
                outcomes[i] = (reason is None, reason)
        for call, (applied, reason) in zip(calls, outcomes, strict=True):
            self.renderer.update(
                helpers.update_tool_call(
                    call.tool_call_id,
                    status="completed" if applied else "failed",
                    content=None
                    if applied
                    else [helpers.tool_content(helpers.text_block(f"Not written: {reason}"))],
                )
            )
        await self.renderer.flush()
        return outcomes

    async def _ask(self, call: EditCall) -> tuple[bool, str | None]:
        if self.session.always_allow_edits:
            return True, None
        response = await self.conn.request_permission(
            session_id=self.session.session_id,
            tool_call=ToolCallUpdate(
                tool_call_id=call.tool_call_id,
                title=f"Write the edit to {call.edit.path}?",
                kind="edit",
                status="pending",
                content=[helpers.tool_diff_content(str(call.path), call.new_text, call.old_text)],
                locations=[ToolCallLocation(path=str(call.path))],
            ),
            options=OPTIONS,
        )
        outcome = response.outcome
        if getattr(outcome, "outcome", None) != "selected":
            return False, "the permission request was cancelled"
        if outcome.option_id == ALLOW_ALWAYS:
            self.session.always_allow_edits = True
            return True, None
        if outcome.option_id == ALLOW_ONCE:
            return True, None
        return False, "rejected by the user"

    async def _write(self, path: Path, calls: list[EditCall]) -> str | None:
        """Apply a file's edits (last position first) to its current text; None when written."""
        edits = [c.edit for c in calls]
        try:
            if edits[0].creates_file and not path.exists():
                before, crlf = "", False
            else:
                before, crlf = await self.files.read_raw(path)
            placed = []
            for call in calls:
                rng = locate(before, call.replaced, call.edit)
                if rng is None:
                    return (
                        f"{call.edit.path} changed where the edit applies since the agent read "
                        "it; run the agent again"
                    )
                placed.append((rng, call.edit.new_text))
            after = before
            for rng, new_text in sorted(
                placed, key=lambda p: offset_of(before, p[0].start), reverse=True
            ):
                after = apply_edit(after, rng, new_text)
            if crlf:
                after = after.replace("\n", "\r\n")
            await self.files.write(path, after)
        except Exception as exc:  # the client's error or the disk's, said in the tool call
            return f"cannot write {edits[0].path}: {exc}"
        return None
