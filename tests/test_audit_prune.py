"""The audit trail cannot grow without bound: `agentls audit prune --before T` removes finished
runs older than T (whole runs, never one in flight), and `audit.retentionDays` does it when a
workspace's engine starts. Queries filter and limit in the store."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.engine import AuditSettings, EngineSettings, build_runtime
from agentls.core.events import EventKind, RunEvent, RunStatus

DAY = 86400.0


def run_events(run_id: str, at: float, *, finished: bool = True) -> list[RunEvent]:
    events = [
        RunEvent(
            run_id=run_id,
            agent="explain",
            goal="g",
            kind=EventKind.STARTED,
            time=at,
            data={"pid": os.getpid()},
        ),
        RunEvent(run_id=run_id, agent="explain", goal="g", kind=EventKind.MODEL_CALL, time=at + 1),
    ]
    if finished:
        events.append(
            RunEvent(
                run_id=run_id,
                agent="explain",
                goal="g",
                kind=EventKind.FINISHED,
                status=RunStatus.FINISHED,
                time=at + 2,
            )
        )
    return events


def fill(store: AuditStore, now: float) -> None:
    for event in (
        run_events("old", now - 40 * DAY)
        + run_events("recent", now - 1 * DAY)
        + run_events("old-open", now - 40 * DAY, finished=False)
    ):
        store.append(event)


def run_ids(store: AuditStore) -> set[str]:
    return {e.run_id for e in store.query()}


def test_prune_removes_whole_finished_runs_older_than_the_cutoff(tmp_path: Path) -> None:
    now = time.time()
    with AuditStore(tmp_path / "audit.db") as store:
        fill(store, now)

        removed = store.prune(before=now - 30 * DAY)

        assert removed == 3
        # A run still open (its process lives: this one) is never cut in half.
        assert run_ids(store) == {"recent", "old-open"}


def test_cli_prune_accepts_an_age_and_says_how_many_were_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str | None
) -> None:
    with AuditStore.for_workspace(tmp_path) as store:
        fill(store, time.time())

    assert main(["--workspace", str(tmp_path), "audit", "prune", "--before", "30d"]) == 0

    assert capsys.readouterr().out.strip() == "removed 3 audit events older than 30d"
    with AuditStore.for_workspace(tmp_path) as store:
        assert run_ids(store) == {"recent", "old-open"}


def test_cli_prune_accepts_an_iso_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with AuditStore.for_workspace(tmp_path) as store:
        fill(store, time.time())

    assert main(["--workspace", str(tmp_path), "audit", "prune", "--before", "2000-01-01"]) == 0

    assert "removed 0 audit events" in capsys.readouterr().out


def test_cli_prune_rejects_a_bad_time_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--workspace", str(tmp_path), "audit", "prune", "--before", "soon"]) == 2

    assert "--before 'soon': expected an ISO-8601 time" in capsys.readouterr().err


def test_retention_setting_prunes_when_the_engine_starts(tmp_path: Path) -> None:
    with AuditStore.for_workspace(tmp_path) as store:
        fill(store, time.time())
    settings = EngineSettings(audit=AuditSettings(retention_days=30))

    runtime = build_runtime(tmp_path, settings)
    try:
        assert runtime.audit is not None
        assert run_ids(runtime.audit) == {"recent", "old-open"}
    finally:
        runtime.budgeter.close()
        runtime.audit.close()


def test_without_retention_nothing_is_pruned(tmp_path: Path) -> None:
    with AuditStore.for_workspace(tmp_path) as store:
        fill(store, time.time())

    runtime = build_runtime(tmp_path, EngineSettings())
    try:
        assert runtime.audit is not None
        assert run_ids(runtime.audit) == {"old", "recent", "old-open"}
    finally:
        runtime.budgeter.close()
        runtime.audit.close()


def test_query_filters_and_limits_in_the_store(tmp_path: Path) -> None:
    now = time.time()
    with AuditStore(tmp_path / "audit.db") as store:
        fill(store, now)

        latest = store.query(limit=2)
        since = store.query(since=now - 2 * DAY)

    assert [e.kind for e in latest] == [EventKind.MODEL_CALL, EventKind.FINISHED]
    assert [e.run_id for e in latest] == ["recent", "recent"]
    assert {e.run_id for e in since} == {"recent"}
