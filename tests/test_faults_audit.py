"""An audit trail that cannot be written (read-only, disk full): runs refuse to start with a clear
error rather than run unaudited, and no model call is made or budget held.

Tests run as any user (root ignores file permissions) and need no special filesystem, so the
store's own SQLite connection is put in the state a read-only file or a full disk leaves it in:
`PRAGMA query_only` makes SQLite refuse writes exactly as it does for a read-only file
(SQLITE_READONLY), and `PRAGMA max_page_count` makes it report SQLITE_FULL exactly as for a full
disk. The errors come from SQLite's real write path, not from a stand-in.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.rig.runtimes import runtime_over, scripted_model
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.core.audit import AuditStore
from agentls.core.definitions import AgentDefinition
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.runtime import AgentRuntime
from agentls.core.state_check import StateWriteError, error_from_sqlite

EXPLAIN = AgentDefinition(name="explainer", description="Explains", instructions="Explain.")


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as s:
        s.responder = lambda body: Text("fine")
        yield s


@pytest.fixture
async def runtime(server: ScriptedOpenAI, tmp_path: Path) -> AsyncIterator[AgentRuntime]:
    rt = runtime_over(tmp_path, scripted_model(server.url), [EXPLAIN], on_disk=True)
    yield rt
    await rt.aclose()


def make_read_only(store: AuditStore) -> None:
    with store._db.lock:
        store._db.connection().execute("PRAGMA query_only = ON")


def fill_disk(store: AuditStore) -> None:
    """No page can be added any more; fill the free space left in the last ones."""
    with store._db.lock:
        conn = store._db.connection()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")
    filler = 0
    with pytest.raises(StateWriteError):
        while True:  # until SQLite reports the database full
            filler += 1
            store.append(
                RunEvent(
                    run_id=f"filler{filler}",
                    agent="x",
                    goal="x" * 200,
                    kind=EventKind.FINISHED,
                    status=RunStatus.FINISHED,
                )
            )


async def test_run_refuses_to_start_when_the_audit_trail_is_read_only(
    server: ScriptedOpenAI, runtime: AgentRuntime, tmp_path: Path
) -> None:
    assert runtime.audit is not None
    make_read_only(runtime.audit)

    with pytest.raises(StateWriteError) as info:
        await runtime.delegate("explainer", "explain")

    message = str(info.value)
    assert str(tmp_path / ".agentls" / "audit.db") in message
    assert "read-only" in message and "cannot audit" in message
    assert server.requests == []  # no model call was made unaudited
    assert runtime.budgeter.snapshot().reserved == 0
    assert runtime.active_runs == []


async def test_run_refuses_to_start_when_the_disk_is_full(
    server: ScriptedOpenAI, runtime: AgentRuntime, tmp_path: Path
) -> None:
    assert runtime.audit is not None
    fill_disk(runtime.audit)

    with pytest.raises(StateWriteError) as info:
        await runtime.delegate("explainer", "explain")

    assert "disk is full" in str(info.value)
    assert str(tmp_path / ".agentls" / "audit.db") in str(info.value)
    assert server.requests == []
    assert runtime.budgeter.snapshot().used == 0


async def test_what_was_appended_before_the_disk_filled_is_still_there(
    runtime: AgentRuntime, tmp_path: Path
) -> None:
    assert runtime.audit is not None
    fill_disk(runtime.audit)
    stored = len(runtime.audit.query())
    assert stored > 0
    with AuditStore.for_workspace(tmp_path) as reopened:
        assert len(reopened.query()) == stored


def test_no_space_left_on_the_device_reads_as_disk_full(tmp_path: Path) -> None:
    error = error_from_sqlite(tmp_path / "audit.db", OSError(errno.ENOSPC, "No space left"))
    assert isinstance(error, StateWriteError)
    assert "disk is full" in str(error) and "free some space" in str(error)


def test_a_read_only_folder_reads_as_read_only(tmp_path: Path) -> None:
    error = error_from_sqlite(tmp_path / "audit.db", OSError(errno.EROFS, "Read-only file system"))
    assert isinstance(error, StateWriteError)
    assert f"make {tmp_path} writable" in str(error)
