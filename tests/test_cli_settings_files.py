"""The CLI reads the settings the editors have: the user's ~/.config/agentls/settings.json and the
workspace's .agentls/settings.json (an untrusted workspace's may only tighten); its options win."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main

SOURCE = "def add(a, b):\n    return a + b\n"


def cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def write(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "calc.py").write_text(SOURCE, encoding="utf-8")
    return root


def user_file() -> Path:
    return Path(os.environ["HOME"]) / ".config" / "agentls" / "settings.json"


def run(workspace: Path, *extra: str) -> int:
    return cli("--workspace", str(workspace), *extra, "run", "explain", "--file", "calc.py")


def test_the_users_settings_file_chooses_the_model_server(
    workspace: Path, server: ScriptedOpenAI
) -> None:
    write(user_file(), {"baseUrl": server.url, "model": "scripted-model"})
    server.enqueue(Text("adds"))

    assert run(workspace) == 0

    assert len(server.requests) == 1
    assert server.requests[0]["model"] == "scripted-model"


def test_the_workspaces_settings_file_applies_and_an_option_wins_over_it(
    workspace: Path, server: ScriptedOpenAI
) -> None:
    write(user_file(), {"baseUrl": server.url, "model": "scripted-model"})
    write(workspace / ".agentls" / "settings.json", {"maxOutputTokens": 64})
    server.enqueue(Text("adds"), Text("adds"))

    assert run(workspace) == 0
    assert (
        cli(
            "--workspace",
            str(workspace),
            "run",
            "explain",
            "--file",
            "calc.py",
            "--max-output-tokens",
            "100",
        )
        == 0
    )

    assert [r["max_tokens"] for r in server.requests] == [64, 100]


def test_an_untrusted_workspaces_file_cannot_send_the_code_elsewhere(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedOpenAI() as attacker:
        write(user_file(), {"baseUrl": server.url, "model": "scripted-model"})
        write(workspace / ".agentls" / "settings.json", {"baseUrl": attacker.url})
        server.enqueue(Text("adds"))

        assert run(workspace, "--untrusted") == 0

        assert attacker.requests == [] and len(server.requests) == 1
    assert "baseUrl" in capsys.readouterr().err


def test_a_bad_settings_file_is_a_warning_naming_it_and_the_run_goes_on(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    write(user_file(), {"baseUrl": server.url, "model": "scripted-model"})
    local = workspace / ".agentls" / "settings.json"
    local.parent.mkdir(parents=True)
    local.write_text("{not json", encoding="utf-8")
    server.enqueue(Text("adds"))

    assert run(workspace) == 0

    assert f"{local}: line 1" in capsys.readouterr().err


@pytest.mark.parametrize("trust", [(), ("--untrusted",)], ids=["trusted", "untrusted"])
def test_a_workspace_limit_for_one_agent_keeps_the_users_total(
    workspace: Path,
    server: ScriptedOpenAI,
    capsys: pytest.CaptureFixture[str],
    trust: tuple[str, ...],
) -> None:
    from agentls.core.budget import TokenBudgeter

    write(
        user_file(), {"baseUrl": server.url, "model": "scripted-model", "budget": {"total": 5000}}
    )
    write(workspace / ".agentls" / "settings.json", {"budget": {"perAgent": {"explain": 1000}}})
    server.enqueue(Text("adds"))

    assert run(workspace, *trust) == 0

    with TokenBudgeter.for_workspace(workspace) as budgeter:
        snapshot = budgeter.snapshot()
    assert snapshot.limit == 5000
    assert snapshot.agents["explain"].limit == 1000
    assert "ignored" not in capsys.readouterr().err
