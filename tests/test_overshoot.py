"""A provider that reports more output than max_tokens allowed: the ledger records the truth, the
run, its events, the CLI and the editor say so, and later calls see the exceeded budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.lsp import wire


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path, backend: str | None) -> Path:
    (tmp_path / "a.py").write_text("x = 1\n")
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit(3000)
    return tmp_path


def run_explain(server: ScriptedOpenAI, workspace: Path, *extra: str) -> int:
    argv = [
        "--workspace", str(workspace), "run", "explain", "--file", str(workspace / "a.py"),
        "--base-url", server.url, "--model", "scripted-model", "--max-output-tokens", "100",
        *extra,
    ]  # fmt: skip
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_an_overshooting_provider_is_recorded_as_reported_and_reported_to_the_user(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text("a very long answer", prompt_tokens=50, completion_tokens=4000))

    assert run_explain(server, workspace, "--json") == 0

    assert server.requests[0]["max_tokens"] == 100
    out = capsys.readouterr()
    assert "reported 4,000 output tokens for a call limited to 100" in out.err
    with TokenBudgeter.for_workspace(workspace) as b:
        snap = b.snapshot()
    assert snap.used == 4050  # the truth, over the 3,000 limit
    with AuditStore.for_workspace(workspace) as audit:
        events = audit.query(limit=50)
    [call] = [e for e in events if e.kind is EventKind.MODEL_CALL]
    assert "limited to 100" in call.data["warning"]
    [end] = [e for e in events if e.is_terminal]
    assert end.status is RunStatus.FINISHED and "limited to 100" in end.data["warnings"][0]
    assert '"warnings": [' in out.out  # the run's result carries it


def test_after_an_overshoot_later_calls_are_refused(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str], backend: str | None
) -> None:
    server.enqueue(Text("long", prompt_tokens=50, completion_tokens=4000))
    assert run_explain(server, workspace) == 0
    capsys.readouterr()

    assert run_explain(server, workspace) == 1

    assert len(server.requests) == 1  # the second call was never made
    whose = "Team" if backend else "Workspace"
    assert f"{whose} token budget exhausted" in capsys.readouterr().err


def test_the_editor_log_line_shows_the_overshoot() -> None:
    event = RunEvent(
        run_id="r" * 32,
        agent="explain",
        goal="g",
        kind=EventKind.MODEL_CALL,
        data={"turn": 1, "call_usage": {}, "warning": "the model provider reported 9 output"},
    )
    assert "warning=the model provider reported 9 output" in wire.log_line(event)
