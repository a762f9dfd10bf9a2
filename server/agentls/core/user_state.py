"""The user's own state folder, `$XDG_STATE_HOME/agentls` (else `~/.local/state/agentls`).

What agentls reads back as the user's own doing (a panel's past conversations, journals of usage
waiting for the team database) lives here, never in the workspace: a repository someone clones
can ship any file under its own folder. Folders are made mode 0700 and keyed by the workspace's
resolved path, so two checkouts never share one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def state_home() -> Path:
    """`$XDG_STATE_HOME/agentls`, else `~/.local/state/agentls` (not created)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agentls"


def workspace_key(workspace: Path) -> str:
    """A short, stable name for a workspace: the hash of its resolved path."""
    return hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:16]


def workspace_state(kind: str, workspace: Path) -> Path:
    """The user's folder of `kind` (e.g. `acp-sessions`) for `workspace`, made mode 0700
    (blocking)."""
    home = state_home()
    home.parent.mkdir(parents=True, exist_ok=True)
    folder = home / kind / workspace_key(workspace)
    for level in (home, home / kind, folder):
        level.mkdir(exist_ok=True, mode=0o700)
    return folder
