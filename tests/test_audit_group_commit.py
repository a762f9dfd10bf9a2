"""Group commit of the audit trail: events from concurrent runs share transactions on a writer
thread, and an append still means stored. An awaited append returns once its event is committed
(a `kill -9` right after loses nothing), each run's events keep their order, a failed write is
raised to whoever made the event, and a run whose events cannot be stored fails, loudly."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.rig.eventually import aeventually
from tests.rig.runtimes import runtime_over, scripted_model
from tests.rig.scripted_openai import ScriptedOpenAI, turns

from agentls.core.audit import AuditStore
from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.runtime import AgentRuntime
from agentls.core.state_check import StateWriteError

RESEARCH = AgentDefinition(
    name="researcher",
    description="Researches",
    instructions="Research.",
    mode=Mode.TOOLS,
    tools=["read_file"],
    max_turns=4,
)


def ev(run_id: str, kind: EventKind = EventKind.MODEL_CALL, **fields: object) -> RunEvent:
    return RunEvent(run_id=run_id, agent="researcher", goal="g", kind=kind, **fields)  # type: ignore[arg-type]


def rows_on_disk(path: Path) -> list[tuple[str, str]]:
    """(run_id, event_id) of every stored event, read by a connection of our own."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT run_id, event_id FROM events ORDER BY rowid").fetchall()
    finally:
        conn.close()


def make_read_only(store: AuditStore, read_only: bool = True) -> None:
    with store._db.lock:
        store._db.connection().execute(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")


async def test_an_awaited_append_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    with AuditStore(tmp_path / "audit.db") as store:
        event = ev("r1", EventKind.STARTED)

        await store.aappend(event)

        assert rows_on_disk(tmp_path / "audit.db") == [("r1", event.event_id)]


async def test_appends_of_concurrent_runs_share_transactions(tmp_path: Path) -> None:
    with AuditStore(tmp_path / "audit.db") as store:

        async def run(n: int) -> None:
            for step in range(10):
                await store.aappend(ev(f"run{n}", data={"step": step}))

        await asyncio.gather(*(run(n) for n in range(32)))

        assert len(rows_on_disk(tmp_path / "audit.db")) == 320
        assert store._writer.batches <= 160  # one commit per event would be 320


async def test_each_runs_events_keep_their_order(tmp_path: Path) -> None:
    """Same timestamp for every event: only the order of appending can order them."""
    with AuditStore(tmp_path / "audit.db") as store:
        commits = [
            store.submit(ev(f"run{n % 5}", time=1000.0, data={"step": n // 5})) for n in range(200)
        ]
        await asyncio.gather(*(store.aappend(ev("late", time=1000.0)) for _ in range(3)))

        assert all(c is not None and c.done() for c in commits)
        for n in range(5):
            steps = [e.data["step"] for e in store.query(run_id=f"run{n}")]
            assert steps == list(range(40))


async def test_a_failed_write_is_raised_to_the_awaiting_appender(tmp_path: Path) -> None:
    with AuditStore(tmp_path / "audit.db") as store:
        make_read_only(store)

        with pytest.raises(StateWriteError, match="read-only"):
            await store.aappend(ev("r1"))
        with pytest.raises(StateWriteError, match="read-only"):
            store.append(ev("r2"))

        make_read_only(store, False)
        await store.aappend(ev("r3"))  # the store recovers once it can be written again
        assert [run for run, _ in rows_on_disk(tmp_path / "audit.db")] == ["r3"]


_APPEND_THEN_WAIT = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from agentls.core.audit import AuditStore
    from agentls.core.events import EventKind, RunEvent

    async def main() -> None:
        store = AuditStore(Path(sys.argv[1]))
        async def run(n: int) -> None:
            for step in range(5):
                await store.aappend(RunEvent(run_id=f"run{n}", agent="a", goal="g",
                                             kind=EventKind.MODEL_CALL, data={"step": step}))
        await asyncio.gather(*(run(n) for n in range(40)))
        print("appended", flush=True)
        time.sleep(120)

    asyncio.run(main())
    """
)


def test_kill_9_right_after_awaited_appends_loses_none_of_them(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPEND_THEN_WAIT, str(tmp_path / "audit.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "appended", proc.stderr.read() if proc.stderr else line
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    with AuditStore(tmp_path / "audit.db") as reopened:
        events = reopened.query()
    assert len(events) == 200
    for n in range(40):
        assert [e.data["step"] for e in events if e.run_id == f"run{n}"] == list(range(5))


def test_events_queued_when_the_process_exits_are_written(tmp_path: Path) -> None:
    """A script that submits and exits without closing the store still leaves every event."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from agentls.core.audit import AuditStore
        from agentls.core.events import EventKind, RunEvent

        store = AuditStore(Path(sys.argv[1]))
        for n in range(100):
            store.submit(RunEvent(run_id=f"run{n}", agent="a", goal="g", kind=EventKind.FAILED))
        """
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "audit.db")], check=True)

    assert len(rows_on_disk(tmp_path / "audit.db")) == 100


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as s:
        s.responder = turns(1, "read_file", {"path": "app.py"}, final="done")
        yield s


@pytest.fixture
async def runtime(server: ScriptedOpenAI, tmp_path: Path) -> AsyncIterator[AgentRuntime]:
    (tmp_path / "app.py").write_text("print('hi')\n", encoding="utf-8")
    rt = runtime_over(tmp_path, scripted_model(server.url), [RESEARCH], on_disk=True)
    yield rt
    await rt.aclose()


async def test_a_run_whose_events_cannot_be_stored_mid_run_fails_and_stops(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    """The audit turns read-only as the first model call is recorded: no further model call
    is made, and the caller gets the audit's error rather than a result."""
    audit = runtime.audit
    assert audit is not None

    def on_event(event: RunEvent) -> None:
        if event.kind is EventKind.MODEL_CALL:
            make_read_only(audit)

    runtime.subscribe(on_event)

    with pytest.raises(StateWriteError, match="read-only"):
        await runtime.delegate("researcher", "read app.py")

    assert len(server.requests) == 1
    assert runtime.budgeter.snapshot().reserved == 0
    assert runtime.active_runs == []


async def test_closing_the_runtime_mid_run_stores_every_runs_end(
    server: ScriptedOpenAI, runtime: AgentRuntime, tmp_path: Path
) -> None:
    server.latency = 0.5
    tasks = [
        asyncio.create_task(runtime.delegate("researcher", f"read app.py ({n})")) for n in range(8)
    ]
    await aeventually(lambda: len(server.requests) >= 8, "every run to call the model")

    await runtime.aclose()
    results = await asyncio.gather(*tasks)

    assert {r.status for r in results} == {RunStatus.CANCELLED}
    with AuditStore.for_workspace(tmp_path) as reopened:
        closing = reopened.runs()
    assert sorted(e.run_id for e in closing) == sorted(r.run_id for r in results)
    assert {e.kind for e in closing} == {EventKind.CANCELLED}
