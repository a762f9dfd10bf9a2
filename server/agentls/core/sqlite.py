"""SQLite files shared by threads and processes (WAL), and telling live processes from dead ones.

The budget ledger and the audit store both sit on `SqliteFile`; `process_alive` lets them drop
what a process killed with `kill -9` left behind without touching what a live one holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

from agentls.core.state_check import (
    STATE_DIR,
    check_database,
    check_state_folder,
    error_from_sqlite,
)

log = logging.getLogger(__name__)

# The state folder also holds the workspace's agent definitions (agents/), which belong in version
# control; the databases do not.
_STATE_GITIGNORE = (
    "# agentls state: ledger and audit trail (agents/ stays tracked)\n*.db\n*.db-*\n*.corrupt-*\n"
    "*.journal\n"
)


def state_dir(root: Path) -> Path:
    """`<root>/.agentls`, created on first use with a .gitignore that keeps the databases out of git."""
    check_state_folder(root)
    state = Path(root) / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error_from_sqlite(state, exc) from exc
    ignore = state / ".gitignore"
    if not ignore.exists():
        # A read-only checkout still works; git may just list the files.
        with contextlib.suppress(OSError):
            ignore.write_text(_STATE_GITIGNORE, encoding="utf-8")
    return state


_BUSY_TIMEOUT_S = 30.0
# SQLite's own auto-checkpoint (PASSIVE, run by the committing connection once the WAL holds this
# many pages): the stores commit off the event loop (the audit's writer thread, the ledger's
# worker), so a checkpoint never holds up the loop, and batched commits make it rare.
_CHECKPOINT_PAGES = 1000
# After a checkpoint the WAL file is truncated to this size, so a burst does not leave it large.
_WAL_SIZE_LIMIT = 4 * 1024 * 1024


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None where there is no /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[-1].split()


def process_start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux): with the pid, its identity."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


@lru_cache(maxsize=1)
def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_alive(
    pid: int, *, start_ticks: str | None = None, started_by: float | None = None
) -> bool:
    """Is `pid` a live process, and the same one that was recorded?

    `start_ticks` (from `process_start_ticks`) or `started_by` (a time at which the process was
    already running) tell a reused pid apart from the original process where /proc allows.
    """
    if pid <= 0:
        return False
    if pid == os.getpid():
        return start_ticks is None or start_ticks == process_start_ticks(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    fields = _proc_stat(pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):
        return False  # killed, waiting to be reaped
    if start_ticks is not None and len(fields) > 19 and fields[19] != start_ticks:
        return False
    if started_by is not None and len(fields) > 19 and (boot := _boot_time()) is not None:
        started_at = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        # btime is whole seconds, so allow some slack before calling it a different process.
        if started_at > started_by + 2.0:
            return False
    return True


class SqliteFile:
    """One SQLite database shared by threads (one connection behind a lock) and processes (WAL).

    `path=None` is an in-memory database. The connection is reopened in a forked child, since
    SQLite handles must not cross a fork. Used by the budget ledger and the audit store.

    The WAL is checkpointed by SQLite itself when a commit leaves it over `_CHECKPOINT_PAGES`
    pages, on the thread that commits; the file keeps no thread of its own, so an idle store has
    no wake-ups.
    """

    def __init__(self, path: Path | None, schema: str, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = path
        self.synchronous = synchronous.upper()
        self._schema = schema
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        if path is not None:
            check_database(path)
        try:
            if path is not None and not path.exists():
                _create_whole(path, schema)
            with self._lock:
                self.connection()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise error_from_sqlite(path or Path(":memory:"), exc) from exc

    def connection(self) -> sqlite3.Connection:
        """The open connection; callers must hold `lock`."""
        pid = os.getpid()
        if self._conn is not None and self._conn_pid == pid:
            return self._conn
        target = ":memory:" if self.path is None else str(self.path)
        conn = sqlite3.connect(
            target, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
        if self.path is not None:
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        _retry_locked(lambda: _create_schema(conn, self._schema))
        self._conn, self._conn_pid = conn, pid
        return conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE (write) or a read snapshot (BEGIN); COMMIT on success, else ROLLBACK."""
        with self._lock:
            conn = self.connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite rolls back by itself on some errors (full)
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                if _state_failure(exc):  # damaged, read-only, full: say which file, what to do
                    raise error_from_sqlite(self.path or Path(":memory:"), exc) from exc
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None


_STATE_FAILURES = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_FULL", "SQLITE_READONLY")


def _state_failure(exc: sqlite3.DatabaseError) -> bool:
    """Is this the file's fault (damage, no space, no write access), not a transient lock?"""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_STATE_FAILURES) or "malformed" in str(exc)


def _create_whole(path: Path, schema: str) -> None:
    """Create a new database under a temporary name and link it into place once it is whole.

    So a database file of ours is never empty: a zero-length one is lost history, not a fresh
    file (core/state_check.py). Another process creating it at the same time wins the link.
    """
    temp = path.with_name(f".{path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        conn = sqlite3.connect(str(temp), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            _create_schema(conn, schema)
        finally:
            conn.close()  # the last connection checkpoints and removes the WAL
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:
            # No hard links here (some network or FUSE filesystems): create in place instead.
            if not path.exists():
                os.rename(temp, path)
    finally:
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _create_schema(conn: sqlite3.Connection, schema: str) -> None:
    try:
        conn.executescript(f"BEGIN IMMEDIATE;{schema}COMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _retry_locked(fn: Callable[[], object], attempts: int = 50) -> None:
    """Retry a statement that SQLite refused with "database is locked" outside the busy handler.

    Switching to WAL and creating the schema can collide when several processes open a new ledger
    at once; the busy handler does not cover every such case.
    """
    for attempt in range(attempts):
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
