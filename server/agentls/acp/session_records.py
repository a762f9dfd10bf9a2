"""ACP session records: a panel's conversations (title, picked agent, history), kept in the user's
own state folder, `$XDG_STATE_HOME/agentls/acp-sessions/<workspace key>/ID.json`.

A record's history is replayed to the panel as the user's own past turns and given to the model
as the conversation so far, so a record must be the user's doing. Records once lived in
WORKSPACE/.agentls/acp-sessions/, where a cloned repository could ship one (a planted
conversation, prompt injection dressed as the user's own words): a record found there is named
once in a warning and never read. The user's own records from before cannot be told from planted
ones, so they are not brought over either.

Each record names its workspace (`cwd`), checked on load. A workspace keeps at most
`KEEP_RECORDS` records, none unused for more than `KEEP_DAYS` days: `prune` drops the rest
(called off the event loop when a session is created). Every function here touches the disk:
call them off the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentls.core.events import new_id
from agentls.core.user_state import workspace_state

log = logging.getLogger(__name__)

SESSIONS_DIR = "acp-sessions"
KEEP_RECORDS = 200
KEEP_DAYS = 90

_warned: set[Path] = set()
_warned_lock = threading.Lock()


def records_folder(workspace: Path) -> Path:
    """The user's folder of the workspace's records (made 0700); warns once about a shipped one."""
    _warn_shipped(workspace)
    return workspace_state(SESSIONS_DIR, workspace)


def shipped_folder(workspace: Path) -> Path:
    """Where records used to live, and where a repository can put some: never read."""
    return workspace / ".agentls" / SESSIONS_DIR


def _warn_shipped(workspace: Path) -> None:
    shipped = shipped_folder(workspace)
    if not shipped.is_dir():
        return
    with _warned_lock:
        if workspace in _warned:
            return
        _warned.add(workspace)
    log.warning(
        "%s is not read: panel sessions are kept in your own state folder (%s), and a repository "
        "could ship records here to plant a conversation; sessions saved here by earlier "
        "versions are not brought back (remove the folder)",
        shipped,
        workspace_state(SESSIONS_DIR, workspace),
    )


def write_record(workspace: Path, record: dict[str, Any]) -> None:
    """Write a session's record atomically, readable by the user only."""
    folder = records_folder(workspace)
    session_id = record["sessionId"]
    tmp = folder / f".{session_id}.{new_id()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(record))
        os.replace(tmp, folder / f"{session_id}.json")
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path, workspace: Path) -> dict[str, Any] | None:
    """A record of `workspace`, or None (unreadable, not a record, or another folder's)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("sessionId") != path.stem:
        return None
    # The folder is keyed by a hash of the path; the record itself says which folder it is of.
    return record if record.get("cwd") == str(workspace) else None


def load_record(workspace: Path, session_id: str) -> dict[str, Any] | None:
    if not session_id.isalnum():
        return None
    return _read(records_folder(workspace) / f"{session_id}.json", workspace)


def list_records(workspace: Path) -> list[dict[str, Any]]:
    """Saved sessions of a workspace, most recent first."""
    records = []
    with contextlib.suppress(OSError):
        for _, path in _by_age(records_folder(workspace))[:KEEP_RECORDS]:
            if (record := _read(path, workspace)) is not None:
                records.append(record)
    records.sort(key=lambda r: float(r.get("updated") or 0), reverse=True)
    return records


def _by_age(folder: Path) -> list[tuple[float, Path]]:
    """The records of `folder` with the time each was last written, newest first."""
    stamped = []
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            stamped.append((path.stat().st_mtime, path))
    return sorted(stamped, key=lambda s: s[0], reverse=True)


def prune(workspace: Path, *, keep: int = KEEP_RECORDS, days: float = KEEP_DAYS) -> int:
    """Drop the workspace's records beyond the `keep` most recent and those unused for more than
    `days` days (a record is written again after every prompt); how many were dropped."""
    oldest = time.time() - days * 86_400
    dropped = 0
    with contextlib.suppress(OSError):
        for rank, (written, path) in enumerate(_by_age(records_folder(workspace))):
            if rank >= keep or written < oldest:
                with contextlib.suppress(OSError):
                    path.unlink()
                    dropped += 1
    return dropped


def missing(workspace: Path, session_id: str) -> str:
    """Why `session_id` cannot be loaded, in one sentence that says what to do."""
    shipped = shipped_folder(workspace) / f"{session_id}.json"
    if session_id.isalnum() and shipped.is_file():
        return (
            f"{shipped} is not read: agentls keeps panel sessions in your own state folder "
            f"({records_folder(workspace)}), and a repository could ship a record here to plant "
            "a conversation; start a new session"
        )
    return (
        f"no saved session {session_id!r} for {workspace}; session/list names the saved ones, "
        "or start a new session"
    )


def record_info(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "sessionId": record["sessionId"],
        "cwd": str(record.get("cwd") or ""),
        "title": record.get("title"),
        "updatedAt": iso(float(record.get("updated") or 0)),
    }


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
