"""The terminal with hostile input: absurd numbers and agent-name typos are one-line argument
errors, and Ctrl-C ends a run whose model asked for a catastrophic search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.rig.scripted_openai import Hang, ScriptedOpenAI, Text, ToolCall
from tests.test_hostile_definitions import BOMB

from agentls.cli import main
from agentls.core.budget import TokenBudgeter
from agentls.core.events import Usage

CaptureFixture = pytest.CaptureFixture[str]


def cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def one_line_error(capsys: CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # One line, like every CLI error: no usage block of argparse above it.
    (line,) = err.strip().splitlines()
    assert "error" in line
    return line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        pytest.param(("budget", "set", "1e23"), "budget set N", id="budget-set-1e23"),
        pytest.param(
            ("budget", "set", "99999999999999999999999"), "budget set N", id="budget-set-huge"
        ),
        pytest.param(("audit", "--since", "0001-01-01"), "--since", id="audit-since-year-1"),
        pytest.param(("audit", "--since", "9999999-01-01"), "--since", id="audit-since-far"),
        pytest.param(("audit", "--limit", "9" * 30), "--limit", id="audit-limit-huge"),
        pytest.param(
            ("run", "explain", "--file", "calc.py", "--budget", "99999999999999999999999"),
            "argument --budget",
            id="run-budget-huge",
        ),
        pytest.param(
            ("run", "explain", "--file", "calc.py", "--max-output-tokens", "9" * 30),
            "argument --max-output-tokens",
            id="run-max-output-huge",
        ),
    ],
)
def test_a_huge_number_is_an_argument_error_naming_the_argument_and_range(
    tmp_path: Path, capsys: CaptureFixture, argv: tuple[str, ...], named: str
) -> None:
    (tmp_path / "calc.py").write_text("x = 1\n")
    assert cli("--workspace", str(tmp_path), *argv) == 2
    line = one_line_error(capsys)
    assert named in line
    assert "1970" in line or "1,000,000,000,000,000" in line or "ISO-8601" in line


@pytest.mark.parametrize("value", ["0", "1000001"])
def test_min_output_tokens_out_of_range_names_its_own_range(
    tmp_path: Path, capsys: CaptureFixture, value: str
) -> None:
    (tmp_path / "calc.py").write_text("x = 1\n")
    argv = ("run", "explain", "--file", "calc.py", "--min-output-tokens", value)
    assert cli("--workspace", str(tmp_path), *argv) == 2
    line = one_line_error(capsys)
    assert "argument --min-output-tokens" in line
    assert "1 to 1,000,000," in line  # its own bound, not the token limits' 1,000,000,000,000,000


def test_a_minimum_answer_above_the_maximum_call_is_refused(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    # The README promises "a call is never granted fewer": a minimum no call can reach is an error.
    (tmp_path / "calc.py").write_text("x = 1\n")
    argv = (
        "run",
        "explain",
        "--file",
        "calc.py",
        "--min-output-tokens",
        "1990",
        "--budget",
        "2000",
    )
    assert cli("--workspace", str(tmp_path), *argv) == 2
    line = one_line_error(capsys)
    assert "--min-output-tokens 1,990 is more than --max-output-tokens 1,024" in line


def test_budget_set_accepts_scientific_notation(tmp_path: Path, capsys: CaptureFixture) -> None:
    assert cli("--workspace", str(tmp_path), "budget", "set", "2e5") == 0
    with TokenBudgeter.for_workspace(tmp_path) as b:
        assert b.snapshot().limit == 200_000


def test_a_typo_in_the_agent_name_is_refused_with_a_suggestion(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    assert cli("--workspace", str(tmp_path), "budget", "set", "5000", "--agent", "reveiw") == 2
    line = one_line_error(capsys)
    assert "'reveiw'" in line and "did you mean 'review'" in line
    assert "--allow-unknown-agent" in line
    with TokenBudgeter.for_workspace(tmp_path) as b:
        assert "reveiw" not in b.snapshot().agents


def test_an_unknown_agent_is_accepted_when_allowed(tmp_path: Path) -> None:
    argv = ("budget", "set", "5000", "--agent", "later", "--allow-unknown-agent")
    assert cli("--workspace", str(tmp_path), *argv) == 0
    with TokenBudgeter.for_workspace(tmp_path) as b:
        assert b.snapshot().agents["later"].limit == 5000


def test_a_limit_set_for_a_typo_can_be_removed_for_good(tmp_path: Path) -> None:
    argv = ("budget", "set", "5000", "--agent", "reveiw", "--allow-unknown-agent")
    assert cli("--workspace", str(tmp_path), *argv) == 0

    assert cli("--workspace", str(tmp_path), "budget", "set", "none", "--agent", "reveiw") == 0

    with TokenBudgeter.for_workspace(tmp_path) as b:
        assert "reveiw" not in b.snapshot().agents


def test_removing_the_limit_of_an_agent_with_spend_keeps_its_spend(tmp_path: Path) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit(5000, agent="explain")
        held = b.reserve(run_id="run-1", agent="explain", prompt_tokens=40, max_tokens=10)
        b.commit(held, Usage(input_tokens=40, output_tokens=2))

    assert cli("--workspace", str(tmp_path), "budget", "set", "none", "--agent", "explain") == 0

    with TokenBudgeter.for_workspace(tmp_path) as b:
        kept = b.snapshot().agents["explain"]
        assert (kept.limit, kept.used) == (None, 42)


def test_reset_of_an_unknown_agent_is_refused(tmp_path: Path, capsys: CaptureFixture) -> None:
    assert cli("--workspace", str(tmp_path), "budget", "reset", "--agent", "explian") == 2
    assert "did you mean 'explain'" in one_line_error(capsys)


def test_ctrl_c_ends_a_run_after_a_catastrophic_search(
    tmp_path: Path, model: ScriptedOpenAI
) -> None:
    (tmp_path / "evil.txt").write_text(("a" * 40 + "!\n") * 20)
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    model.enqueue(ToolCall("search", {"query": "(a+)+$"}), Hang(120, Text("too late")))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTLS_"))}
    env["OPENAI_API_KEY"] = "sk-test"
    argv = [sys.executable, "-m", "agentls", "--workspace", str(tmp_path), "run", "research"]
    argv += ["--file", "calc.py", "--goal", "find", "--base-url", model.url]
    argv += ["--model", "scripted-model"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # The search came back and the model was asked again: the pattern did not pin the run.
        waited = 0.0
        while len(model.requests) < 2 and proc.poll() is None and waited < 120:
            time.sleep(0.05)
            waited += 0.05
        assert len(model.requests) == 2, "the search never returned"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    audit = subprocess.run(
        [sys.executable, "-m", "agentls", "--workspace", str(tmp_path), "audit", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    kinds = [json.loads(line)["kind"] for line in audit.stdout.splitlines()]
    assert kinds[-1] == "cancelled"
    assert "tool_call" in kinds


def test_an_anchor_bomb_tasks_file_is_a_one_line_error(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    nested = BOMB.replace("name: bomb", "n: 1").replace("\n", "\n    ")
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("- agent: explain\n  goal: go\n  lines:\n    " + nested)
    assert cli("--workspace", str(tmp_path), "parallel", "--tasks", str(tasks)) == 2
    line = one_line_error(capsys)
    assert "tasks.yaml" in line and "aliases" in line
