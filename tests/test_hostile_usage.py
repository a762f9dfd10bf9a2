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
from agentls.core.bounds import MAX_CALL_TOKENS, MAX_TOKENS
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


def test_an_impossible_usage_in_an_answer_that_breaks_off_records_the_reservation(
    server: ScriptedOpenAI, workspace: Path, capsys: CaptureFixture
) -> None:
    # The usage comes, then the stream ends without a finish reason: the run fails, its spend stays.
    server.enqueue(Text("x is", prompt_tokens=2**63, finish_reason=""))

    assert run_explain(server, workspace) == 1

    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "failed" and "before finishing it" in result["error"]
    [warning] = result["warnings"]
    assert "9,223,372,036,854,775,808 prompt tokens" in warning
    with AuditStore.for_workspace(workspace) as audit:
        [end] = [e for e in audit.query(limit=100) if e.is_terminal]
    assert end.data["warnings"] == [warning]
    with TokenBudgeter.for_workspace(workspace) as b:
        used = b.snapshot().used
    assert used > 0 and f"reservation, {used:,} tokens" in warning
    assert ledger_types(workspace) == {"integer"}
    budget_still_works(workspace, capsys)


def damaged_ledger(workspace: Path) -> Path:
    """A sound ledger whose numbers another tool wrote: a float past SQLite's integers, a whole
    float, text, a negative limit, more cached than input tokens."""
    with TokenBudgeter.for_workspace(workspace) as b:
        b.set_limit(5000, agent="explain")
    path = workspace / ".agentls" / "ledger.db"
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO scopes (scope, lim, input, cached, output) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                ("total", None, 9.3e18, 0, 5),
                ("agent:explain", -1, 1234.0, 0, 5),
                ("agent:review", None, "lots", 0, 0),
                ("agent:tests", None, 10, 20, 0),
            ],
        )
    return path


def test_doctor_names_the_ledger_values_the_budget_cannot_use(
    workspace: Path, capsys: CaptureFixture
) -> None:
    damaged_ledger(workspace)

    assert cli(workspace, "doctor") == 1

    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if "ledger.db" in line]
    assert line.startswith("BAD")
    assert "table scopes, column input, row 'total': 9.3e+18 (a real number)" in line
    assert "column lim, row 'agent:explain': -1" in line
    assert "row 'agent:review': 'lots' (text)" in line
    assert "column cached, row 'agent:tests': 20 cached tokens" in line
    assert "agentls doctor --repair" in line
    assert cli(workspace, "budget") == 2  # one line naming the file, not a traceback
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ledger.db" in err and "table scopes" in err


def test_doctor_repair_keeps_a_copy_and_never_makes_a_budget_look_less_spent(
    workspace: Path, capsys: CaptureFixture
) -> None:
    path = damaged_ledger(workspace)

    assert cli(workspace, "doctor", "--repair") == 0

    out = capsys.readouterr().out
    assert "repaired" in out and "the old file is kept as" in out
    [kept] = path.parent.glob("ledger.db.corrupt-*")
    with sqlite3.connect(kept) as conn:
        kept_total = conn.execute("SELECT input FROM scopes WHERE scope = 'total'").fetchone()
    assert kept_total == (9.3e18,)  # the copy holds the values as they were
    assert ledger_types(workspace) == {"integer"}
    with TokenBudgeter.for_workspace(workspace) as b:
        snap = b.snapshot()
    assert snap.usage.input_tokens == MAX_TOKENS  # unknown spend counts as spent
    assert snap.agents["explain"].usage.input_tokens == 1234  # a whole float, kept exactly
    assert snap.agents["explain"].limit == 0  # an unreadable limit lets nothing through
    assert snap.agents["review"].usage.input_tokens == MAX_TOKENS
    assert snap.agents["tests"].usage.cached_input_tokens == 10
    budget_still_works(workspace, capsys)
    assert cli(workspace, "doctor") == 0
