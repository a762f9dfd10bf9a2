"""The budget's wait bound and minimum answer are settings (`budget.waitSeconds`,
`budget.minOutputTokens`) and CLI flags (`--budget-wait`, `--min-output-tokens`): bounds-checked
with errors that name them, and they reach every model call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.budget import TokenBudgeter
from agentls.core.engine import BudgetSettings, EngineSettings, build_runtime
from agentls.lsp.settings import parse_settings

SOURCE = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedOpenAI() as s:
        s.responder = lambda body: Text("It adds.", completion_tokens=10)
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "calc.py").write_text(SOURCE, encoding="utf-8")
    return tmp_path


def cli(server: ScriptedOpenAI, workspace: Path, *extra: str) -> int:
    argv = ["--workspace", str(workspace), "run", "explain", "--file", str(workspace / "calc.py")]
    argv += ["--base-url", server.url, "--model", "scripted-model", *extra]
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_the_settings_default_to_a_minute_and_32_tokens() -> None:
    settings, problems = parse_settings({})
    assert (settings.budget.wait_seconds, settings.budget.min_output_tokens) == (60.0, 32)
    assert problems == []


def test_out_of_bounds_values_are_named_and_the_rest_of_the_budget_applies() -> None:
    settings, problems = parse_settings(
        {"budget": {"total": 500, "waitSeconds": -1, "minOutputTokens": 0}}
    )
    assert settings.budget.total == 500
    assert (settings.budget.wait_seconds, settings.budget.min_output_tokens) == (60.0, 32)
    assert sorted(p.split(":")[0] for p in problems) == [
        "setting agentls.budget.minOutputTokens",
        "setting agentls.budget.waitSeconds",
    ]
    _, problems = parse_settings({"budget": {"waitSeconds": 3601}})
    assert [p.split(":")[0] for p in problems] == ["setting agentls.budget.waitSeconds"]


def test_the_settings_reach_the_runtime(workspace: Path) -> None:
    settings = EngineSettings(budget=BudgetSettings(wait_seconds=0.5, min_output_tokens=100))
    runtime = build_runtime(workspace, settings)
    try:
        assert runtime.config.budget_wait_seconds == 0.5
        assert runtime.config.min_output_tokens == 100
    finally:
        runtime.budgeter.close()
        if runtime.audit is not None:
            runtime.audit.close()


def test_budget_wait_bounds_how_long_a_run_waits_for_calls_in_flight(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TokenBudgeter.for_workspace(workspace) as ledger:
        ledger.set_limit(2000)
        # A call of another run holds all but 10 tokens: the run must wait for it to settle.
        held = ledger.reserve(run_id="other", agent="x", prompt_tokens=0, max_tokens=1990)

        assert cli(server, workspace, "--budget-wait", "0.3") == 1

        err = capsys.readouterr().err
        assert "waited 0.3" in err and "calls in flight" in err
        assert server.requests == []
        ledger.release(held)


def test_min_output_tokens_refuses_a_call_whose_answer_would_be_shorter(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(server, workspace, "--budget", "1000", "--min-output-tokens", "1000") == 1
    assert "needs at least" in capsys.readouterr().err
    assert server.requests == []
    # The default minimum (32) lets the same run through.
    assert cli(server, workspace, "--budget", "1000") == 0
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--budget-wait", "-1"),
        ("--budget-wait", "3601"),
        ("--budget-wait", "soon"),
        ("--min-output-tokens", "0"),
        ("--min-output-tokens", "1000001"),
    ],
)
def test_bad_budget_flags_exit_2_naming_the_flag(
    server: ScriptedOpenAI,
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
) -> None:
    assert cli(server, workspace, flag, value) == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert not (workspace / ".agentls").exists()


def test_the_acp_agent_takes_the_same_budget_flags(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main(["acp", "--budget-wait", "-1"])
    except SystemExit as exc:
        status = int(exc.code or 0)
    assert status == 2
    assert "argument --budget-wait" in capsys.readouterr().err
