"""A model server that reports usage no call can have: counts past any context window, past
SQLite's integers, negative, not numbers, more cached than prompt tokens. The run keeps its answer,
the ledger records the call's reservation with a warning, and `agentls budget` keeps working."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.rig.scripted_openai import Reply, ScriptedOpenAI, StreamEvent, Text

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.bounds import MAX_CALL_TOKENS
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent

CaptureFixture = pytest.CaptureFixture[str]
USAGE_COLUMNS = ("input", "cached", "output", "reasoning")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "a.py").write_text("x = 1\n")
    return tmp_path


def cli(workspace: Path, *argv: str) -> int:
    try:
        return main(["--workspace", str(workspace), *argv])
    except SystemExit as exc:
        return int(exc.code or 0)


def run_explain(server: ScriptedOpenAI, workspace: Path) -> int:
    return cli(
        workspace, "run", "explain", "--file", str(workspace / "a.py"), "--json",
        "--base-url", server.url, "--model", "scripted-model", "--max-output-tokens", "100",
    )  # fmt: skip


def model_calls(workspace: Path) -> list[RunEvent]:
    with AuditStore.for_workspace(workspace) as audit:
        events = audit.query(limit=100)
    return [e for e in events if e.kind is EventKind.MODEL_CALL]


def ledger_types(workspace: Path) -> set[str]:
    """The SQLite storage classes of every committed count in the ledger."""
    with sqlite3.connect(workspace / ".agentls" / "ledger.db") as conn:
        rows = conn.execute(
            "SELECT " + ", ".join(f"typeof({c})" for c in USAGE_COLUMNS) + " FROM scopes"
        ).fetchall()
    return {kind for row in rows for kind in row}


def budget_still_works(workspace: Path, capsys: CaptureFixture) -> dict[str, Any]:
    capsys.readouterr()
    assert cli(workspace, "budget") == 0
    assert "token budget" in capsys.readouterr().out
    assert cli(workspace, "budget", "--json") == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)
    return shown


def reported(usage: Any) -> Reply:
    """An answer whose only usage report is `usage`, sent as a chunk of its stream verbatim."""
    chunk = json.dumps({"object": "chat.completion.chunk", "choices": [], "usage": usage})
    return StreamEvent(Text("x is one", include_usage=False), data=chunk)


HOSTILE_REPORTS = {
    "2^63 prompt tokens": Text("x is one", prompt_tokens=2**63),
    "1e30 prompt tokens": reported({"prompt_tokens": 1e30, "completion_tokens": 3}),
    "a negative count": Text("x is one", prompt_tokens=-5),
    "a string": reported({"prompt_tokens": "12", "completion_tokens": 3}),
    "more cached than prompt tokens": Text("x is one", prompt_tokens=50, cached_tokens=500),
    "output past any context window": Text("x is one", completion_tokens=MAX_CALL_TOKENS + 1),
    "usage that is not an object": reported([12, 3]),
}


@pytest.mark.parametrize("reply", HOSTILE_REPORTS.values(), ids=HOSTILE_REPORTS.keys())
def test_an_impossible_usage_report_is_recorded_as_the_reservation_with_a_warning(
    server: ScriptedOpenAI, workspace: Path, capsys: CaptureFixture, reply: Reply
) -> None:
    server.enqueue(reply)

    assert run_explain(server, workspace) == 0

    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished" and result["text"] == "x is one"
    [call] = model_calls(workspace)
    reserved = call.data["reserved"]
    assert reserved > 0
    assert "the ledger recorded the call's reservation" in call.data["warning"]
    assert call.data["call_usage"]["estimated"] is True
    assert result["warnings"] == [call.data["warning"]]
    with TokenBudgeter.for_workspace(workspace) as b:
        snap = b.snapshot()
    assert snap.used == reserved and snap.agents["explain"].used == reserved
    assert ledger_types(workspace) == {"integer"}
    shown = budget_still_works(workspace, capsys)
    assert shown["used"] == reserved


def test_two_calls_of_the_largest_sqlite_integer_leave_the_ledger_whole(
    server: ScriptedOpenAI, workspace: Path, capsys: CaptureFixture
) -> None:
    server.enqueue(Text("one", prompt_tokens=2**63 - 1), Text("two", prompt_tokens=2**63 - 1))

    assert run_explain(server, workspace) == 0
    assert run_explain(server, workspace) == 0

    reserved = [call.data["reserved"] for call in model_calls(workspace)]
    assert len(reserved) == 2
    assert ledger_types(workspace) == {"integer"}
    shown = budget_still_works(workspace, capsys)
    assert shown["used"] == sum(reserved)
    capsys.readouterr()
    assert cli(workspace, "doctor") == 0

