"""A local journal for what the team database could not take: usage of calls that ended and audit
events written while it was away, kept in `.agentls/` and applied when it is back.

Entries are JSON lines appended under an exclusive lock and fsynced before `append` returns, so
what was kept survives a crash of this process. `replay` hands every entry to the caller (which
writes them in one database transaction, each idempotent on its id) and empties the file only
once that succeeded: a replay interrupted between the two is simply done again, and applies
nothing twice. Several processes of one workspace share the file; the lock orders them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

SUFFIX = ".journal"
_GITIGNORE_LINE = f"*{SUFFIX}"


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
        _keep_out_of_git(self.path.parent)
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


def _keep_out_of_git(state: Path) -> None:
    """The state folder's .gitignore (written before journals existed) also ignores journals."""
    ignore = state / ".gitignore"
    try:
        text = ignore.read_text(encoding="utf-8")
    except OSError:
        return
    if _GITIGNORE_LINE not in text.split():
        with contextlib.suppress(OSError):
            ignore.write_text(text.rstrip("\n") + f"\n{_GITIGNORE_LINE}\n", encoding="utf-8")
