"""`agentls parallel` and `agentls create` through the CLI's main(), against the scripted server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.rig.scripted_openai import ScriptedOpenAI, Status, Text

from agentls.cli import main
from agentls.core.registry import AgentRegistry, default_sources

APP = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    return root.resolve()


def model_args(server: ScriptedOpenAI) -> list[str]:
    return ["--base-url", server.url, "--model", "scripted-model"]


def agent_of(body: dict[str, Any]) -> str:
    """Which built-in agent a request is for, by the first words of its system prompt."""
    system = body["messages"][0]["content"]
    return "review" if system.startswith("You are a careful senior reviewer") else "other"


def by_agent(body: dict[str, Any]) -> Text:
    # Different lengths per agent, so their usage differs.
    return Text("a finding " * 20) if agent_of(body) == "review" else Text("an explanation")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# agentls parallel


def test_parallel_agents_on_a_file_print_the_summary_with_per_agent_usage(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responder = by_agent
    code, out, err = run_cli(
        [
            "--workspace",
            str(workspace),
            "parallel",
            "--agent",
            "review",
            "--agent",
            "explain",
            "--file",
            str(workspace / "src" / "app.py"),
            *model_args(server),
        ],
        capsys,
    )
    assert code == 0, err
    assert "2 runs in" in out
    for agent in ("review", "explain"):
        assert f"{agent} · finished" in out
    assert "a finding" in out and "an explanation" in out
    # One row per run, then per-agent usage and the total, which match the requests served.
    usage_lines = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.startswith("  ") and ":" in line and "tokens" in line
    }
    assert set(usage_lines) == {"review", "explain", "total"}
    assert usage_lines["review"] != usage_lines["explain"]
    assert len(server.requests) == 2
    # Both saw the file.
    for body in server.requests:
        assert "return a + b" in body["messages"][1]["content"]


def test_parallel_json_output_has_per_agent_usage_summing_to_the_total(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responder = by_agent
    code, out, _ = run_cli(
        [
            "--workspace",
            str(workspace),
            "parallel",
            "--agent",
            "review",
            "--agent",
            "explain",
            "--agent",
            "review",
            "--goal",
            "look at it",
            "--json",
            *model_args(server),
        ],
        capsys,
    )
    assert code == 0
    data = json.loads(out)
    assert [r["agent"] for r in data["results"]] == ["review", "explain", "review"]
    assert all(r["status"] == "finished" for r in data["results"])
    review = sum(
        r["usage"]["input_tokens"] + r["usage"]["output_tokens"]
        for r in data["results"]
        if r["agent"] == "review"
    )
    per_agent = data["per_agent"]
    assert per_agent["review"]["input_tokens"] + per_agent["review"]["output_tokens"] == review
    total = data["usage"]["input_tokens"] + data["usage"]["output_tokens"]
    assert total == sum(u["input_tokens"] + u["output_tokens"] for u in per_agent.values())
    assert all("Goal: look at it" in b["messages"][1]["content"] for b in server.requests)


def test_parallel_tasks_file(
    workspace: Path,
    server: ScriptedOpenAI,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    server.responder = by_agent
    tasks = workspace / "tasks.yaml"
    tasks.write_text(
        yaml.safe_dump(
            [
                {"agent": "review", "goal": "check add", "file": "src/app.py", "lines": "1-2"},
                {"agent": "explain", "goal": "explain sub", "file": "src/app.py", "lines": "5-6"},
                {"agent": "explain", "goal": "no target", "budget": 5000},
            ]
        )
    )
    monkeypatch.chdir(tmp_path)  # relative files are the workspace's, wherever agentls runs
    code, out, err = run_cli(
        ["--workspace", str(workspace), "parallel", "--tasks", str(tasks), *model_args(server)],
        capsys,
    )
    assert code == 0, err
    assert "3 runs in" in out
    prompts = sorted(b["messages"][1]["content"] for b in server.requests)
    assert len(prompts) == 3
    add_prompt = next(p for p in prompts if "check add" in p)
    assert "return a + b" in add_prompt and "return a - b" not in add_prompt
    sub_prompt = next(p for p in prompts if "explain sub" in p)
    assert "return a - b" in sub_prompt and "return a + b" not in sub_prompt
    plain = next(p for p in prompts if "no target" in p)
    assert "Target:" not in plain
    assert "review:" in out and "explain:" in out and "total:" in out


def test_parallel_reports_a_failed_run_and_exits_1(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responder = lambda body: (
        Status(400, "scripted refusal") if agent_of(body) == "review" else Text("fine")
    )
    code, out, err = run_cli(
        [
            "--workspace",
            str(workspace),
            "parallel",
            "--agent",
            "review",
            "--agent",
            "explain",
            *model_args(server),
        ],
        capsys,
    )
    assert code == 1
    assert "failed" in out and "finished" in out
    assert "some runs did not finish" in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["parallel"], "--agent"),
        (["parallel", "--agent", "review", "--tasks", "tasks.yaml"], "--tasks"),
        (["parallel", "--agent", "review", "--agent", "nope"], "--agent"),
        (["parallel", "--agent", "review", "--file", "src/missing.py"], "--file"),
    ],
)
def test_parallel_bad_arguments_exit_2_naming_the_argument(
    argv: list[str],
    named: str,
    workspace: Path,
    server: ScriptedOpenAI,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(workspace)
    (workspace / "tasks.yaml").write_text(yaml.safe_dump([{"agent": "review"}]))
    code, _, err = run_cli(["--workspace", str(workspace), *argv, *model_args(server)], capsys)
    assert code == 2
    assert err.startswith("agentls: error: ")
    assert named in err
    if "nope" in argv:
        assert "unknown agent 'nope'" in err
    assert server.requests == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- agent: nope\n", "task 1: unknown agent 'nope'"),
        ("- agent: review\n- goal: no agent\n", "task 2: needs at least an 'agent' name"),
        ("- agent: review\n  colour: red\n", "task 1: unknown field 'colour'"),
        ("- agent: review\n  budget: -5\n", "task 1: budget must be a whole number above 0"),
        ("- agent: review\n  goal: [1, 2]\n", "task 1: goal must be text"),
        ("- agent: review\n  lines: 1-2\n", "task 1: lines needs a file"),
        ("- agent: review\n  file: src/none.py\n", "src/none.py: no such file"),
        (
            "- agent: review\n  file: src/app.py\n  lines: 9-3\n",
            "task 1: lines '9-3': lines start at 1",
        ),
        ("agent: review\n", "expected a non-empty list of tasks"),
        ("[]\n", "expected a non-empty list of tasks"),
        ("- agent: [review\n", "not valid YAML/JSON"),
    ],
)
def test_parallel_bad_task_file_exits_2_naming_the_task(
    content: str,
    expected: str,
    workspace: Path,
    server: ScriptedOpenAI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks = workspace / "tasks.yaml"
    tasks.write_text(content)
    code, _, err = run_cli(
        ["--workspace", str(workspace), "parallel", "--tasks", str(tasks), *model_args(server)],
        capsys,
    )
    assert code == 2
    assert f"--tasks {tasks}" in err
    assert expected in err
    assert server.requests == []


def test_parallel_missing_tasks_file_exits_2(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        [
            "--workspace",
            str(workspace),
            "parallel",
            "--tasks",
            str(workspace / "none.yaml"),
            *model_args(server),
        ],
        capsys,
    )
    assert code == 2
    assert "--tasks" in err and "none.yaml" in err


def test_parallel_max_parallel_must_be_positive(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(
            ["--workspace", str(workspace), "parallel", "--agent", "review", "--max-parallel", "0"]
        )
    assert exit_.value.code == 2
    assert "--max-parallel" in capsys.readouterr().err


# agentls create

DEFINITION = {
    "name": "sql-reviewer",
    "description": "Reviews code for SQL injection",
    "instructions": "You review code for SQL injection and name the fix for each finding.",
    "mode": "tools",
    "tools": ["read_file", "propose_edit"],
    "max_turns": 3,
}


def test_create_save_no_run_prints_the_yaml_and_writes_the_file(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text(json.dumps(DEFINITION)))
    code, out, err = run_cli(
        [
            "--workspace",
            str(workspace),
            "create",
            "a reviewer for SQL injection",
            "--save",
            "--no-run",
            *model_args(server),
        ],
        capsys,
    )
    assert code == 0, err
    path = workspace / ".agentls" / "agents" / "sql-reviewer.yaml"
    assert path.is_file()
    assert f"saved to {path}" in err
    printed = yaml.safe_load(out.split("# the new agent", 1)[1])
    assert printed["name"] == "sql-reviewer"
    assert printed["tools"] == ["read_file"]  # read-only by default
    assert printed["instructions"] == DEFINITION["instructions"]
    saved = yaml.safe_load(path.read_text())
    assert {k: saved[k] for k in ("name", "description", "instructions", "mode", "tools")} == {
        k: printed[k] for k in ("name", "description", "instructions", "mode", "tools")
    }
    registry = AgentRegistry.load(default_sources(workspace))
    assert registry.get("sql-reviewer").source == "workspace"
    assert len(server.requests) == 1  # --no-run: the creation call only
    assert server.requests[0]["response_format"]["type"] == "json_schema"


def test_create_then_run_on_a_file(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    answer_only = {**DEFINITION, "mode": "answer", "tools": [], "max_turns": 1}
    server.enqueue(Text(json.dumps(answer_only)), Text("no injection here"))
    code, out, err = run_cli(
        [
            "--workspace",
            str(workspace),
            "create",
            "a reviewer for SQL injection",
            "--file",
            str(workspace / "src" / "app.py"),
            "--goal",
            "check it",
            *model_args(server),
        ],
        capsys,
    )
    assert code == 0, err
    assert not (workspace / ".agentls" / "agents").exists()  # not saved without --save
    assert "name: sql-reviewer" in out
    assert len(server.requests) == 2
    run = server.requests[1]
    assert run["messages"][0]["content"] == answer_only["instructions"]
    assert "Goal: check it" in run["messages"][1]["content"]
    assert "return a + b" in run["messages"][1]["content"]


def test_create_twice_invalid_exits_2_with_the_validation_errors(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Text('{"name": "Bad Name"}'), Text('{"name": "Bad Name"}'))
    code, _, err = run_cli(
        ["--workspace", str(workspace), "create", "anything", "--save", *model_args(server)],
        capsys,
    )
    assert code == 2
    assert "still invalid" in err and "field name" in err
    assert not (workspace / ".agentls" / "agents").exists()


def test_create_save_over_an_unknown_file_exits_2(
    workspace: Path, server: ScriptedOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "sql-reviewer.yaml").write_text("broken: [\n")
    server.enqueue(Text(json.dumps(DEFINITION)))
    code, _, err = run_cli(
        [
            "--workspace",
            str(workspace),
            "create",
            "a reviewer",
            "--save",
            "--no-run",
            *model_args(server),
        ],
        capsys,
    )
    assert code == 2
    assert "--save" in err and "already exists" in err
    assert (folder / "sql-reviewer.yaml").read_text() == "broken: [\n"
