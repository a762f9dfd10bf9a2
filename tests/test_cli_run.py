"""The terminal adapter: `agentls agents` and `agentls run`, as a user at a shell sees them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Status, Text, ToolCall

from agentls.cli import main

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide terminal for rich (tests/conftest.py isolates HOME and the model settings)."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "calc.py").write_text(SOURCE, encoding="utf-8")
    return tmp_path


def cli(*argv: str) -> int:
    """main()'s exit status, including argparse's own exits."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def run_args(server: ScriptedOpenAI, workspace: Path, agent: str, *extra: str) -> list[str]:
    return [
        "--workspace",
        str(workspace),
        "run",
        agent,
        "--file",
        str(workspace / "calc.py"),
        "--base-url",
        server.url,
        "--model",
        "scripted-model",
        *extra,
    ]


# --- agentls agents ----------------------------------------------------------------------------


def test_agents_lists_the_builtins_with_their_source(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--workspace", str(workspace), "agents") == 0
    out = capsys.readouterr().out
    for name in ("explain", "review", "document", "refactor", "write-tests", "research"):
        assert name in out
    assert "builtin" in out


def test_agents_json_lists_name_mode_and_source(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--workspace", str(workspace), "agents", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    by_name = {a["name"]: a for a in listed["agents"]}
    assert by_name["refactor"]["mode"] == "edit"
    assert by_name["review"]["source"] == "builtin"
    assert listed["errors"] == []


def test_agents_shows_a_workspace_override_as_workspace(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "review.yaml").write_text("name: review\ndescription: Ours\ninstructions: Ours.\n")
    assert cli("--workspace", str(workspace), "agents", "--json") == 0
    by_name = {a["name"]: a for a in json.loads(capsys.readouterr().out)["agents"]}
    assert by_name["review"]["source"] == "workspace"
    assert by_name["review"]["path"] == str(folder / "review.yaml")


def test_agents_reports_definition_errors_with_file_and_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal must not break the location apart
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    bad = folder / "bad [draft].yaml"
    bad.write_text("name: x\ndescription: d\ninstructions: i\ntools: [read_file, rm_rf]\n")
    assert cli("--workspace", str(workspace), "agents") == 1
    out = capsys.readouterr().out
    assert f"{bad}:4:" in out
    assert "rm_rf" in out
    assert "review" in out  # the good agents are still listed


def test_agents_json_reports_definition_errors(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "bad.yaml").write_text("name: x\n  broken: [\n")
    assert cli("--workspace", str(workspace), "agents", "--json") == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert error.startswith(f"{folder / 'bad.yaml'}:2:")


# --- agentls run: answers ----------------------------------------------------------------------


def test_run_prints_the_answer_and_progress(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text("It adds and subtracts.", prompt_tokens=120, completion_tokens=6))
    assert cli(*run_args(server, workspace, "explain")) == 0
    captured = capsys.readouterr()
    assert "It adds and subtracts." in captured.out
    assert "turn 1" in captured.err
    assert "126 tokens" in captured.err
    assert "finished" in captured.err


def test_run_sends_the_goal_and_the_selected_lines(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text("ok"))
    args = run_args(server, workspace, "explain", "--goal", "What does sub do?", "--lines", "5-6")
    assert cli(*args) == 0
    user = server.requests[0]["messages"][-1]["content"]
    assert "What does sub do?" in user
    assert "return a - b" in user
    assert "return a + b" not in user


def test_run_with_a_relative_file_from_the_workspace(
    server: ScriptedOpenAI,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(workspace)
    server.enqueue(Text("ok"))
    argv = ["run", "explain", "--file", "calc.py", "--base-url", server.url]
    assert cli(*argv, "--model", "scripted-model") == 0


def test_run_json_prints_the_result_as_json(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text("It adds."))
    assert cli(*run_args(server, workspace, "explain", "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished"
    assert result["text"] == "It adds."
    assert result["usage"]["input_tokens"] > 0


def test_run_tools_agent_shows_each_tool_call(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(ToolCall("search", {"query": "def sub"}), Text("sub is on line 5."))
    assert cli(*run_args(server, workspace, "research")) == 0
    captured = capsys.readouterr()
    assert "tool search" in captured.err
    assert "turn 2" in captured.err
    assert "sub is on line 5." in captured.out


def test_run_that_fails_exits_1_with_the_reason(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(*[Status(401)] * 2)
    assert cli(*run_args(server, workspace, "explain")) == 1
    err = capsys.readouterr().err
    assert "failed" in err
    assert "401" in err


def test_run_over_budget_exits_1_without_calling_the_model(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(*run_args(server, workspace, "explain", "--budget", "20")) == 1
    assert "budget" in capsys.readouterr().err
    assert server.requests == []


def test_run_records_the_run_in_the_workspace_audit_trail(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentls.core.audit import AuditStore

    server.enqueue(Text("ok"))
    assert cli(*run_args(server, workspace, "explain")) == 0
    with AuditStore.for_workspace(workspace) as audit:
        (closing,) = audit.runs()
    assert closing.agent == "explain"
    assert closing.status.value == "finished"


# --- agentls run: edits ------------------------------------------------------------------------

NEW_SUB = "def sub(a, b):\n    return -(b - a)\n"


def test_edit_agent_prints_a_diff_and_leaves_the_file_alone(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text(f"```python\n{NEW_SUB}```"))
    assert cli(*run_args(server, workspace, "refactor", "--lines", "5-6")) == 0
    out = capsys.readouterr().out
    assert "--- a/calc.py" in out
    assert "+++ b/calc.py" in out
    assert "-    return a - b" in out
    assert "+    return -(b - a)" in out
    assert "--apply" in out
    assert (workspace / "calc.py").read_text() == SOURCE


def test_edit_agent_with_apply_writes_the_file(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text(f"```python\n{NEW_SUB}```"))
    assert cli(*run_args(server, workspace, "refactor", "--lines", "5-6", "--apply")) == 0
    assert (workspace / "calc.py").read_text() == SOURCE.replace("a - b", "-(b - a)")
    captured = capsys.readouterr()
    assert "calc.py" in captured.out
    assert "edit applied" in captured.err


def test_edit_agent_on_the_whole_file_with_apply(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = SOURCE.replace("a + b", "b + a")
    server.enqueue(Text(f"Here you go:\n```python\n{new}```\n"))
    assert cli(*run_args(server, workspace, "refactor", "--apply")) == 0
    assert (workspace / "calc.py").read_text() == new


# --- agentls run: bad inputs exit 2 naming the argument ----------------------------------------


def test_unknown_agent_exits_2_naming_it(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(*run_args(server, workspace, "reviewer")) == 2
    err = capsys.readouterr().err
    assert "reviewer" in err
    assert "review" in err.replace("'reviewer'", "")  # the known agents are listed
    assert server.requests == []


def test_missing_file_exits_2_naming_the_argument(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = run_args(server, workspace, "explain")
    argv[argv.index("--file") + 1] = str(workspace / "nope.py")
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert "--file" in err
    assert "nope.py" in err


def test_no_file_argument_exits_2_naming_it(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--workspace", str(workspace), "run", "explain") == 2
    assert "--file" in capsys.readouterr().err


@pytest.mark.parametrize("lines", ["abc", "3-x", "5-3", "0-2", "-2", ""])
def test_malformed_lines_exit_2_naming_the_argument(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str], lines: str
) -> None:
    assert cli(*run_args(server, workspace, "explain", "--lines", lines)) == 2
    assert "--lines" in capsys.readouterr().err
    assert server.requests == []


def test_lines_past_the_end_exit_2_naming_the_argument(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(*run_args(server, workspace, "explain", "--lines", "50-60")) == 2
    err = capsys.readouterr().err
    assert "--lines" in err
    assert "6" in err  # the file's real length


def test_lines_running_past_the_end_are_clamped(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text("ok"))
    assert cli(*run_args(server, workspace, "explain", "--lines", "5-60")) == 0
    assert "return a - b" in server.requests[0]["messages"][-1]["content"]


@pytest.mark.parametrize("budget", ["0", "-5", "lots"])
def test_bad_budget_exits_2_naming_the_argument(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str], budget: str
) -> None:
    assert cli(*run_args(server, workspace, "explain", "--budget", budget)) == 2
    assert "--budget" in capsys.readouterr().err


def test_file_outside_the_workspace_exits_2_naming_the_argument(
    server: ScriptedOpenAI,
    workspace: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "other.py"
    elsewhere.write_text("x = 1\n")
    argv = run_args(server, workspace, "explain")
    argv[argv.index("--file") + 1] = str(elsewhere)
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert "--file" in err
    assert "--workspace" in err
    assert server.requests == []


def test_workspace_that_is_not_a_folder_exits_2(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--workspace", str(workspace / "calc.py"), "run", "explain", "--file", "calc.py"]
    assert cli(*argv) == 2
    assert "--workspace" in capsys.readouterr().err


def test_a_relative_file_is_found_in_the_workspace_from_any_directory(
    server: ScriptedOpenAI,
    workspace: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `agentls --workspace examples run review --file sample.py`, as `--tasks` entries resolve.
    server.enqueue(Text("looked at it"))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    argv = run_args(server, workspace, "explain")
    argv[argv.index("--file") + 1] = "calc.py"
    assert cli(*argv) == 0
    assert "calc.py" in json.dumps(server.requests[0]["messages"])


def test_a_file_given_relative_to_the_current_directory_is_refused_with_the_rule(
    server: ScriptedOpenAI,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(workspace.parent)
    argv = run_args(server, workspace, "explain")
    argv[argv.index("--file") + 1] = f"{workspace.name}/calc.py"
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert "--file is relative to the workspace" in err
    assert server.requests == []


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli() == 2
    assert "run" in capsys.readouterr().out
