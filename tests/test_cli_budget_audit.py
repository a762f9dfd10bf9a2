"""`agentls budget` and `agentls audit` as a user runs them, bad input included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent, RunStatus, Usage

CaptureFixture = pytest.CaptureFixture[str]


def budget(ws: Path, *argv: str) -> int:
    return main(["--workspace", str(ws), "budget", *argv])


def audit(ws: Path, *argv: str) -> int:
    return main(["--workspace", str(ws), "audit", *argv])


def test_budget_shows_an_unlimited_fresh_workspace(tmp_path: Path, capsys: CaptureFixture) -> None:
    assert budget(tmp_path) == 0
    out = capsys.readouterr().out
    assert "total" in out and "unlimited" in out


def test_budget_set_persists_total_and_agent_limits(tmp_path: Path, capsys: CaptureFixture) -> None:
    assert budget(tmp_path, "set", "200k") == 0
    assert "200,000" in capsys.readouterr().out
    assert budget(tmp_path, "set", "5_000", "--agent", "review") == 0
    out = capsys.readouterr().out
    assert "agent review" in out and "5,000" in out
    with TokenBudgeter.for_workspace(tmp_path) as b:
        snap = b.snapshot()
    assert snap.limit == 200_000 and snap.agents["review"].limit == 5_000

    assert budget(tmp_path, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["limit"] == 200_000 and shown["agents"]["review"]["limit"] == 5_000

    assert budget(tmp_path, "set", "none") == 0
    assert "unlimited" in capsys.readouterr().out
    with TokenBudgeter.for_workspace(tmp_path) as b:
        assert b.snapshot().limit is None


def test_budget_shows_usage_and_reset_zeroes_it(tmp_path: Path, capsys: CaptureFixture) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit(10_000)
        for agent, used in (("reviewer", 1_234), ("writer", 2_000)):
            r = b.reserve(run_id=agent, agent=agent, prompt_tokens=used, max_tokens=100)
            b.commit(r, Usage(input_tokens=used, estimated=agent == "writer"))
    assert budget(tmp_path) == 0
    out = capsys.readouterr().out
    assert "3,234" in out and "6,766" in out  # used and remaining of the total
    assert "1,234" in out and "~2,000" in out  # per agent, the estimate marked
    assert budget(tmp_path, "reset", "--agent", "writer") == 0
    with TokenBudgeter.for_workspace(tmp_path) as b:
        snap = b.snapshot()
    assert (snap.used, snap.agents["writer"].used, snap.agents["reviewer"].used) == (3234, 0, 1234)
    capsys.readouterr()
    assert budget(tmp_path, "reset") == 0
    with TokenBudgeter.for_workspace(tmp_path) as b:
        snap = b.snapshot()
    assert (snap.used, snap.limit) == (0, 10_000)


@pytest.mark.parametrize("columns", [60, 48])
def test_on_a_narrow_terminal_budget_keeps_every_scope_name_and_number_whole(
    tmp_path: Path, capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    """A split pane: the parts of the usage (and what is held) give way, the scope names fold,
    and no name or number is cut or squeezed out of sight."""
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit(2_000_000)
        r = b.reserve(run_id="r", agent="explain", prompt_tokens=1_234, max_tokens=100)
        b.commit(r, Usage(input_tokens=1_234, output_tokens=56))
    assert budget(tmp_path, "set", "300k", "--user", "alice", "--per", "month") == 0
    monkeypatch.setenv("COLUMNS", str(columns))
    capsys.readouterr()

    assert budget(tmp_path) == 0
    out = capsys.readouterr().out

    assert all(len(line) <= columns for line in out.splitlines())
    assert "…" not in out
    assert "total" in out and "agent explain" in out and "user alice" in out
    assert "1,290" in out and "2,000,000" in out and "300,000" in out


@pytest.mark.parametrize("bad", ["ten", "-5", "1.5", "12x", ""])
def test_budget_set_rejects_bad_numbers(tmp_path: Path, capsys: CaptureFixture, bad: str) -> None:
    assert budget(tmp_path, "set", bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentls: error: budget set N") and repr(bad) in err
    with TokenBudgeter.for_workspace(tmp_path) as b:
        assert b.snapshot().limit is None  # nothing was changed


def _populate(ws: Path) -> None:
    now = time.time()
    with AuditStore.for_workspace(ws) as store:
        for run_id, agent, t0, usage, parent in (
            ("aaaa1111", "reviewer", now - 7200, Usage(input_tokens=1000, output_tokens=234), None),
            (
                "bbbb2222",
                "writer",
                now - 60,
                Usage(input_tokens=500, cached_input_tokens=100),
                None,
            ),
            (
                "cccc3333",
                "helper",
                now - 50,
                Usage(input_tokens=40, output_tokens=2, estimated=True),
                "bbbb2222",
            ),
        ):
            common = {
                "run_id": run_id,
                "agent": agent,
                "goal": f"goal of {agent}",
                "parent_run_id": parent,
                "depth": 1 if parent else 0,
            }
            store.append(RunEvent(kind=EventKind.STARTED, time=t0, data={"pid": 1}, **common))
            store.append(
                RunEvent(
                    kind=EventKind.MODEL_CALL,
                    time=t0 + 1,
                    usage=usage,
                    data={"model": "gpt-x", "turn": 1, "call_usage": usage.model_dump()},
                    **common,
                )
            )
            store.append(
                RunEvent(
                    kind=EventKind.TOOL_CALL,
                    time=t0 + 2,
                    usage=usage,
                    data={"tool": "read_file", "arguments": "path='app.py'"},
                    **common,
                )
            )
            store.append(
                RunEvent(
                    kind=EventKind.FINISHED,
                    status=RunStatus.FINISHED,
                    time=t0 + 3,
                    usage=usage,
                    duration_ms=3000.0,
                    **common,
                )
            )


def test_audit_table_shows_events_and_per_agent_totals(
    tmp_path: Path, capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a terminal wide enough not to wrap the details
    _populate(tmp_path)
    assert audit(tmp_path) == 0
    out = capsys.readouterr().out
    assert "12 events" in out
    assert "read_file(path='app.py')" in out
    assert "tokens per agent" in out
    for agent, total in (("reviewer", "1,234"), ("writer", "500"), ("helper", "~42")):
        row = next(line for line in out.splitlines() if f" {agent} " in line and total in line)
        assert row
    assert "1,776" in out  # all agents together, the child's tokens included


def test_on_a_narrow_terminal_audit_keeps_names_and_numbers_whole(
    tmp_path: Path, capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A split pane 60 columns wide: the time column gives way, the details wrap, and every
    agent's name and tokens stay whole in both tables (the right border is not cut off)."""
    monkeypatch.setenv("COLUMNS", "60")
    _populate(tmp_path)
    assert audit(tmp_path) == 0
    out = capsys.readouterr().out

    lines = out.splitlines()
    assert all(len(line) <= 60 for line in lines)
    ruled = [line.rstrip() for line in lines if line.startswith(("┃", "│"))]
    assert ruled and all(line.endswith(("┃", "│")) for line in ruled)
    assert "…" not in out
    for agent, total in (("reviewer", "1,234"), ("writer", "500"), ("helper", "~42")):
        assert any(f" {agent} " in line and total in line for line in lines)
    assert "1,776" in out


def test_audit_json_prints_jsonl_and_filters(tmp_path: Path, capsys: CaptureFixture) -> None:
    _populate(tmp_path)
    assert audit(tmp_path, "--json") == 0
    events = [RunEvent.model_validate_json(line) for line in capsys.readouterr().out.splitlines()]
    assert len(events) == 12

    assert audit(tmp_path, "--json", "--agent", "helper") == 0
    lines = capsys.readouterr().out.splitlines()
    assert {json.loads(line)["agent"] for line in lines} == {"helper"}

    assert audit(tmp_path, "--json", "--run", "bbbb") == 0  # a prefix is enough
    lines = capsys.readouterr().out.splitlines()
    # The run and the child run it delegated to: --run shows the whole tree.
    assert {json.loads(line)["run_id"] for line in lines} == {"bbbb2222", "cccc3333"}

    assert audit(tmp_path, "--json", "--run", "cccc") == 0  # a child alone: no parent
    lines = capsys.readouterr().out.splitlines()
    assert {json.loads(line)["run_id"] for line in lines} == {"cccc3333"}

    assert audit(tmp_path, "--json", "--since", "1h") == 0
    lines = capsys.readouterr().out.splitlines()
    assert {json.loads(line)["run_id"] for line in lines} == {"bbbb2222", "cccc3333"}

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 3600))
    assert audit(tmp_path, "--json", "--since", since) == 0
    assert len(capsys.readouterr().out.splitlines()) == 8

    assert audit(tmp_path, "--json", "--limit", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["model_call", "tool_call", "finished"]


def test_audit_for_one_run_totals_that_run(tmp_path: Path, capsys: CaptureFixture) -> None:
    _populate(tmp_path)
    assert audit(tmp_path, "--run", "aaaa1111") == 0
    out = capsys.readouterr().out
    assert "4 events" in out and "1,234" in out
    assert "writer" not in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--since", "2h ago"], "--since '2h ago'"),
        (["--limit", "ten"], "--limit 'ten'"),
        (["--limit", "0"], "--limit '0'"),
        (["--run", "zzzz"], "--run 'zzzz'"),
    ],
)
def test_audit_rejects_bad_arguments(
    tmp_path: Path, capsys: CaptureFixture, argv: list[str], named: str
) -> None:
    _populate(tmp_path)
    assert audit(tmp_path, *argv) == 2
    assert capsys.readouterr().err.startswith(f"agentls: error: {named}")


def test_audit_closes_runs_whose_process_died(tmp_path: Path, capsys: CaptureFixture) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    with AuditStore.for_workspace(tmp_path) as store:
        store.append(
            RunEvent(
                kind=EventKind.STARTED,
                run_id="lost",
                agent="reviewer",
                goal="g",
                data={"pid": int(dead.stdout)},
            )
        )
        store.append(
            RunEvent(
                kind=EventKind.STARTED,
                run_id="live",
                agent="reviewer",
                goal="g",
                data={"pid": os.getpid()},
            )
        )
    assert audit(tmp_path, "--json") == 0
    kinds = {
        (e["run_id"], e["kind"]) for e in map(json.loads, capsys.readouterr().out.splitlines())
    }
    assert ("lost", "interrupted") in kinds
    assert ("live", "interrupted") not in kinds


def test_audit_on_an_empty_workspace(tmp_path: Path, capsys: CaptureFixture) -> None:
    assert audit(tmp_path) == 0
    assert "no audit events" in capsys.readouterr().out
