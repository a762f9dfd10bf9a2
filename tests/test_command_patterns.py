"""Allow-list patterns admit only what they name: a model steered by text in a file cannot turn
`python -m pytest **` into a way to delete, overwrite or run anything outside the workspace.

Each attack is a command line a hostile model could choose under a pattern the docs show; each must
be left to the user (here: no one to ask, so refused), never run unasked.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

from agentls.cli import main
from agentls.core.tools.command import (
    CommandError,
    CommandPolicy,
    CommandRequest,
    CommandSettings,
    exact_pattern,
    parse_command,
)

PY = sys.executable


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    (root / "src").mkdir()
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the workspace, holding a file the user would miss."""
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    return folder.resolve()


async def allowed(workspace: Path, pattern: str, command: str) -> bool:
    """Whether `pattern` lets `command` run unasked in `workspace`, as the policy decides it."""
    policy = CommandPolicy(workspace, CommandSettings(enabled=True, allow=[pattern]))
    try:
        parsed = parse_command(command, policy.patterns())
    except CommandError:
        return False
    request = CommandRequest(
        run_id="run",
        agent="tester",
        goal="test",
        command=parsed.display,
        shell=False,
        cwd=workspace,
    )
    _, decided_by = await policy.decide(request, parsed)
    return decided_by["decided_by"] == "allow_list"


# --- the attacks: each would run unasked today ------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "command"),
    [
        ("python -m pytest **", "python -m pytest --basetemp={outside}"),
        ("python -m pytest **", "python -m pytest tests/test_a.py --basetemp={outside}"),
        ("python -m pytest **", "python -m pytest --junitxml=/etc/x"),
        ("python -m pytest **", "python -m pytest -p evil"),
        ("python -m pytest **", "python -m pytest -c /other.ini"),
        ("python -m pytest **", "python -m pytest --rootdir=/"),
        ("python -m pytest **", "python -m pytest /tmp/t.py"),
        ("python -m pytest **", "python -m pytest {outside}/t.py"),
        ("python -m pytest **", "python -m pytest ../precious/t.py"),
        ("python -m pytest **", "python -m pytest ~/t.py"),
        ("python -m pytest **", "python -m pytest @args.txt"),
        ("pytest tests/*", "pytest tests/../src/x.py"),
        ("pytest tests/*", "pytest tests/.."),
        ("pytest tests/*", "pytest tests/sub/x.py"),
        ("ruff check *", "ruff check --fix"),
        ("ruff check *", "ruff check --config=x"),
        ("ruff check *", "ruff check /"),
    ],
    ids=[
        "basetemp-empties-a-folder",
        "basetemp-after-a-path",
        "junitxml-overwrites-a-file",
        "p-loads-a-module",
        "c-reads-another-config",
        "rootdir-outside",
        "absolute-test-file-outside",
        "test-file-beside-the-workspace",
        "dot-dot-escape",
        "home-folder",
        "arguments-file",
        "glob-over-dot-dot",
        "glob-is-dot-dot",
        "glob-crosses-slash",
        "ruff-fix",
        "ruff-config",
        "glob-matches-root",
    ],
)
async def test_a_pattern_does_not_admit_the_attack(
    workspace: Path, outside: Path, pattern: str, command: str
) -> None:
    command = command.format(outside=outside)
    assert not await allowed(workspace, pattern, command), f"{pattern!r} admitted {command!r}"


async def test_a_symlink_out_of_the_workspace_is_outside(workspace: Path, outside: Path) -> None:
    (workspace / "vendored").symlink_to(outside, target_is_directory=True)
    assert not await allowed(workspace, "python -m pytest **", "python -m pytest vendored/t.py")
    assert not await allowed(workspace, "pytest vendored/*", "pytest vendored/t.py")


async def test_an_option_value_glob_stays_a_name_in_the_workspace(workspace: Path) -> None:
    assert await allowed(workspace, "pytest --maxfail=* **", "pytest --maxfail=2 tests")
    assert not await allowed(workspace, "pytest --maxfail=* **", "pytest --maxfail=/etc/x")
    assert not await allowed(workspace, "pytest --junitxml=* **", "pytest --junitxml=..")
    assert not await allowed(workspace, "pytest --junitxml=* **", "pytest --junitxml=~")


async def test_options_match_only_where_the_pattern_names_them(workspace: Path) -> None:
    assert not await allowed(workspace, "pytest -q **", "pytest -q -x")
    assert not await allowed(workspace, "pytest -q **", "pytest -xq")
    assert not await allowed(workspace, "pytest -q **", "pytest tests -q")
    assert not await allowed(workspace, "npm test **", "npm test -- --watch")


# --- what the patterns are for still runs -----------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "command"),
    [
        ("python -m pytest -q **", "python -m pytest -q tests/test_a.py"),
        ("python -m pytest -q -x **", "python -m pytest -q -x tests/test_a.py::test_a"),
        ("python -m pytest **", "python -m pytest"),
        ("python -m pytest **", "python -m pytest tests/test_a.py tests"),
        ("python -m pytest **", "python -m pytest {workspace}/tests/test_a.py"),
        ("python -m pytest **", "python -m pytest tests/../src"),
        ("pytest -p no:cacheprovider **", "pytest -p no:cacheprovider tests"),
        ("pytest --maxfail * **", "pytest --maxfail 3 tests"),
        ("pytest tests/*", "pytest tests/test_a.py"),
        ("ruff check *", "ruff check src"),
        ("npm test", "npm test"),
    ],
)
async def test_a_pattern_still_admits_what_it_names(
    workspace: Path, pattern: str, command: str
) -> None:
    command = command.format(workspace=workspace)
    assert await allowed(workspace, pattern, command), f"{pattern!r} refused {command!r}"


async def test_the_pattern_a_refusal_suggests_admits_exactly_that_command(
    workspace: Path, outside: Path
) -> None:
    """The hint after a refusal is the user's explicit choice, options and outside paths included."""
    command = shlex.join(["pytest", f"--basetemp={outside}", "-k", "a*b", "[x]", "-*"])
    pattern = exact_pattern(parse_command(command, []))
    assert await allowed(workspace, pattern, command)
    assert not await allowed(workspace, pattern, command.replace("a*b", "axb"))


# --- patterns that would be unsafe to read are refused when written ---------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("pytest -* **", "names options with a glob"),
        ("pytest --*=x", "names options with a glob"),
        ("* **", "the program must be written out"),
        ("py*test **", "the program must be written out"),
        ("pytest tests/**", "'\\*\\*' is a word of its own"),
    ],
)
def test_a_pattern_that_globs_options_or_programs_is_refused_naming_it(
    pattern: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        CommandSettings(allow=[pattern])


# --- end to end: the command line a user types, a hostile model's choice ----------------------

TESTER = """\
name: tester
description: Runs the tests
instructions: Run the tests.
mode: tools
tools: [read_file, run_command]
max_turns: 4
"""


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedOpenAI() as server:
        yield server


def run_tests_with(model: ScriptedOpenAI, workspace: Path, command: str, pattern: str) -> str:
    """`agentls run tester --allow-command PATTERN` with no terminal, the model calling `command`;
    what the model was told back."""
    (workspace / ".agentls" / "agents").mkdir(parents=True)
    (workspace / ".agentls" / "agents" / "tester.yaml").write_text(TESTER)
    # A test that asks for a temporary folder: pytest empties --basetemp before handing it out.
    (workspace / "test_tmp.py").write_text("def test_tmp(tmp_path):\n    assert tmp_path\n")
    model.enqueue(ToolCall("run_command", {"command": command}), Text("done"))
    argv = [
        "--workspace",
        str(workspace),
        "run",
        "tester",
        "--file",
        str(workspace / "test_tmp.py"),
    ]
    argv += ["--base-url", model.url, "--model", "scripted-model", "--allow-command", pattern]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    message = model.requests[1]["messages"][-1]
    assert message["role"] == "tool"
    return str(message["content"])


def test_a_model_cannot_empty_a_folder_outside_through_the_documented_pattern(
    model: ScriptedOpenAI, workspace: Path, outside: Path
) -> None:
    command = shlex.join([PY, "-m", "pytest", f"--basetemp={outside}"])
    reply = run_tests_with(model, workspace, command, f"{PY} -m pytest **")
    assert (outside / "keep.txt").read_text() == "mine\n"
    assert "the command was not run" in reply
    assert "no terminal to ask on" in reply


def test_the_documented_pattern_still_runs_the_tests_unasked(
    model: ScriptedOpenAI, workspace: Path
) -> None:
    (workspace / "test_plain.py").write_text("def test_plain():\n    pass\n")
    command = shlex.join([PY, "-m", "pytest", "-q", "test_plain.py"])
    reply = run_tests_with(model, workspace, command, f"{PY} -m pytest -q **")
    assert "1 passed" in reply
    assert "exit code 0" in reply
