"""Checks of a workspace's state folder (`.agentls/`): what is wrong with a database and what to do.

The ledger and the audit trail are SQLite files that users, disks and other tools can break: a
file that is not a database, one cut short, a directory where a file belongs, a zero-length file
where history used to be, `.agentls` itself being a file. Opening such state raises `StateError`,
whose message names the file and says what to do; `diagnose` and `repair` are what
`agentls doctor` runs. A repair never deletes: the bad file is moved aside to
`<name>.corrupt-<UTC time>` and an empty one is created in its place.

agentls creates a new database under a temporary name and links it into place once its schema is
written (core/sqlite.py), so a zero-length database file is never one of ours: it is history that
was lost (a truncation), and it is reported instead of silently starting over. A process killed
while creating one leaves that temporary file behind (with SQLite's -wal/-shm files next to it):
`doctor` reports the ones whose process is gone and `--repair` removes them, and nothing else.

A sound ledger can still hold numbers the budget cannot use (a float, text, a count out of range):
`doctor` names them by table and column, and `--repair` keeps a copy of the file and makes them
safe in place (core/ledger_values.py says how).
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".agentls"
LEDGER = "ledger.db"
DATABASES = (LEDGER, "audit.db")
_HEADER = b"SQLite format 3\x00"
# The name core/sqlite.py `_create_whole` gives a database it is creating, `.<name>.new-<pid>-<8
# hex>`, and the files SQLite keeps next to it. Only these are ever removed.
_TEMP_DATABASE = re.compile(
    r"\.(?:" + "|".join(re.escape(n) for n in DATABASES) + r")\.new-(\d+)-[0-9a-f]{8}"
    r"(?:-wal|-shm|-journal)?"
)
_REPAIR_HINT = "run `agentls doctor --repair` to move it aside (it is kept) and start a new one"


class StateError(Exception):
    """Workspace state that cannot be used; the message names the file and says what to do."""

    def __init__(self, path: Path, problem: str, hint: str = _REPAIR_HINT) -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"{path}: {problem}; {hint}")

    def __reduce__(self) -> tuple[type[StateError], tuple[Path, str, str]]:
        return (StateError, (self.path, self.problem, self.hint))


class StateWriteError(StateError):
    """The state folder refuses writes (read-only, disk full): runs do not start unaudited."""


def check_state_folder(root: Path) -> None:
    """Raise StateError when `<root>/.agentls` exists but is not a folder."""
    state = Path(root) / STATE_DIR
    if state.exists() and not state.is_dir():
        raise StateError(
            state,
            "is a file, but agentls keeps its ledger and audit trail in a folder of that name",
            f"move the file aside (e.g. `mv {state} {state}.bak`) or run `agentls doctor --repair`",
        )


def database_problem(path: Path) -> str | None:
    """What makes `path` unusable as an existing agentls database, or None (fine or absent).

    Cheap: reads the 100-byte header and the file size, never the pages (`integrity` does that).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a database file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_size == 0:
        return "is empty (0 bytes): the history it held is gone, the file was truncated"
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not header.startswith(_HEADER):
        return "is not an SQLite database (garbage or another kind of file)"
    if len(header) < 100:
        return f"is cut short: {st.st_size} bytes, less than a database header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is valid only when the change counters agree (SQLite docs).
    if header[24:28] == header[92:96] and pages and st.st_size < pages * page_size:
        return (
            f"is cut short: {st.st_size} bytes where its header says {pages * page_size} "
            "(half-written or truncated)"
        )
    return None


def check_database(path: Path) -> None:
    """Raise StateError when the database at `path` exists but cannot be used."""
    if (problem := database_problem(path)) is not None:
        raise StateError(path, problem)


def error_from_sqlite(path: Path, exc: BaseException) -> StateError:
    """The StateError for an SQLite (or OS) error met while opening or writing a state file."""
    text = str(exc)
    lowered = text.lower()
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in lowered:
        return StateWriteError(
            path,
            "cannot be written: the disk is full",
            "free some space; agentls does not run agents it cannot audit",
        )
    if (
        "readonly" in lowered
        or "read-only" in lowered
        or (isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM))
    ):
        return StateWriteError(
            path,
            "cannot be written: the file or its folder is read-only",
            f"make {path.parent} writable; agentls does not run agents it cannot audit",
        )
    if "unable to open" in lowered:
        if (problem := database_problem(path)) is not None:
            return StateError(path, problem)
        return StateWriteError(
            path,
            f"cannot be opened ({text}); check that {path.parent} exists and is writable",
            "agentls does not run agents it cannot audit",
        )
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return StateError(path, f"is damaged ({text})")
    return StateError(path, f"cannot be used ({text})", "run `agentls doctor` to check it")


@dataclass(frozen=True)
class Finding:
    """One thing `agentls doctor` checked: the path, whether it is fine, and what it found."""

    path: Path
    ok: bool
    message: str


def integrity(path: Path) -> str | None:
    """A full check of an existing database (every page, read only); None when it is sound."""
    if (problem := database_problem(path)) is not None:
        return problem
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return error_from_sqlite(path, exc).problem
    messages = [str(r[0]) for r in rows]
    if messages != ["ok"]:
        return "is damaged: " + "; ".join(messages[:3])
    return None


def diagnose(root: Path) -> list[Finding]:
    """Check the state folder and each database in it; nothing is changed."""
    state = Path(root) / STATE_DIR
    try:
        check_state_folder(root)
    except StateError as exc:
        return [Finding(state, False, f"{exc.problem}; {exc.hint}")]
    if not state.exists():
        return [Finding(state, True, "no state yet (created on first use)")]
    findings: list[Finding] = []
    if not os.access(state, os.W_OK):
        findings.append(
            Finding(state, False, "is read-only: runs cannot be audited; make it writable")
        )
    for name in DATABASES:
        path = state / name
        problem = integrity(path)
        if problem is not None:
            findings.append(Finding(path, False, f"{problem}; {_REPAIR_HINT}"))
        elif path.exists() and name == LEDGER and (values := _ledger_values(path)) is not None:
            findings.append(Finding(path, False, values))
        elif path.exists():
            findings.append(Finding(path, True, "ok"))
        else:
            findings.append(Finding(path, True, "not created yet"))
    return findings + _temp_findings(root)


def _ledger_values(path: Path) -> str | None:
    """What is wrong with the numbers a sound ledger holds, and what to do; None when nothing."""
    from agentls.core.ledger_values import REPAIR_HINT, bad_values, summary

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            bad = bad_values(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{error_from_sqlite(path, exc).problem}; {_REPAIR_HINT}"
    return f"{summary(bad)}; {REPAIR_HINT}" if bad else None


def repair_ledger_values(path: Path) -> Repair | None:
    """Keep a copy of a sound ledger that holds bad numbers, then make them safe in place."""
    from agentls.core.ledger_values import bad_values, repair_values, summary

    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        try:
            if not bad_values(conn):
                return None
            kept = aside_name(path)
            copy = sqlite3.connect(kept)
            try:
                conn.backup(copy)
            finally:
                copy.close()
            conn.execute("BEGIN IMMEDIATE")
            bad = repair_values(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise error_from_sqlite(path, exc) from exc
    return Repair(path, kept, summary(bad))


@dataclass(frozen=True)
class TempDatabase:
    """A temporary file of a database being created, and the process that was creating it."""

    path: Path
    pid: int

    @property
    def abandoned(self) -> bool:
        """Its process is gone: it was killed before the database was put in place."""
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive, another user's
            return False
        return False


def temp_databases(root: Path) -> list[TempDatabase]:
    """The temporary database files in the state folder (regular files named as ours only)."""
    state = Path(root) / STATE_DIR
    try:
        entries = sorted(state.iterdir())
    except OSError:  # absent, a file, unreadable: the folder's own checks report that
        return []
    found = []
    for entry in entries:
        match = _TEMP_DATABASE.fullmatch(entry.name)
        if match and stat.S_ISREG(entry.lstat().st_mode):
            found.append(TempDatabase(entry, int(match.group(1))))
    return found


def _temp_findings(root: Path) -> list[Finding]:
    findings = []
    for temp in temp_databases(root):
        if temp.abandoned:
            message = (
                f"is a temporary database left by process {temp.pid}, which ended before it was "
                "put in place; run `agentls doctor --repair` to remove it"
            )
        else:
            message = f"is a database that process {temp.pid} is creating now; left alone"
        findings.append(Finding(temp.path, not temp.abandoned, message))
    return findings


def aside_name(path: Path, now: float | None = None) -> Path:
    """`<name>.corrupt-<UTC time>` next to `path`, not yet taken."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    return candidate


def move_aside(path: Path) -> Path:
    """Rename `path` (and a database's -wal/-shm files with it) to its `.corrupt-<time>` name."""
    target = aside_name(path)
    os.rename(path, target)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.rename(side, target.with_name(target.name + suffix))
    return target


@dataclass(frozen=True)
class Repair:
    """A bad file moved aside (`kept`) and recreated empty at `path`, or, with `kept` None, a
    temporary file of ours that was removed."""

    path: Path
    kept: Path | None
    problem: str
