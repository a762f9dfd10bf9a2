"""A local journal for what the team database could not take: usage of calls that ended and audit
events written while it was away, kept on this machine and applied when it is back.

Journals live in the user's own state folder (`$XDG_STATE_HOME/agentls/journals/`, else
`~/.local/state/...`), one folder per workspace, never in the workspace: a repository someone
clones could ship a `.agentls/ledger.journal` whose replay would charge the team's budget or
write forged events into its audit trail under the user's name.

Entries are JSON lines appended under an exclusive lock and fsynced before `append` returns, so
what was kept survives a crash of this process. `replay` hands every entry to the caller (which
writes them in one database transaction, each idempotent on its id) and empties the file only
once that succeeded: a replay interrupted between the two is simply done again, and applies
nothing twice. Several processes of one workspace share the file; the lock orders them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

SUFFIX = ".journal"


def journal_path(state: Path, name: str) -> Path:
    """Where the journal `name` of the workspace state folder `state` lives: in the user's state
    folder (mode 0700), keyed by the state folder's path. A file of that name inside the workspace
    is never read (a repository may ship one); it is named in a warning."""
    shipped = state / name
    if shipped.exists():
        log.warning(
            "%s is not read: journals are kept in your own state folder, and a repository could "
            "ship this file (remove it)",
            shipped,
        )
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    key = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:16]
    folder = Path(base) / "agentls" / "journals" / key
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / name


class Journal:
    """One JSON-lines file of entries waiting for the database."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Keep `entries`; durable on disk when this returns."""
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
        with self._locked("a") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def replay(self, apply: Callable[[list[dict[str, Any]]], None]) -> int:
        """Give every kept entry to `apply`, then empty the journal; return how many there were.

        If `apply` raises, the journal is left as it was (and the error propagates).
        """
        if not self.pending():
            return 0
        with self._locked("r+") as f:
            entries = []
            for n, line in enumerate(f.read().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    # Only a write cut short by a crash leaves this, and its append never
                    # returned: nothing that was reported kept is lost.
                    log.warning("%s:%d: skipped an entry cut short", self.path, n)
            if entries:
                apply(entries)
            f.seek(0)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        return len(entries)

    @contextlib.contextmanager
    def _locked(self, mode: str) -> Iterator[IO[str]]:
        if mode == "r+" and not self.path.exists():
            mode = "a+"
        with open(self.path, mode, encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                if mode == "a+":
                    f.seek(0)
                yield f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
