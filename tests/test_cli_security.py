"""The terminal's side of the security features, as a user at a shell meets them: run_command
asks on the terminal (refused, with the flag that would allow it, when there is none), allow-list
patterns, `--confirm` for edits, and `--untrusted` for a folder not yet reviewed.
"""

from __future__ import annotations

import os
import pty
import select
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.events import EventKind

PY = sys.executable
SOURCE = "def add(a, b):\n    return a + b\n"
TESTER = """\
name: tester
description: Runs the tests
instructions: Run the tests.
mode: tools
tools: [read_file, run_command, propose_edit]
max_turns: 4
"""
WRITE_MARKER = shlex.join([PY, "-c", "open('ran.txt', 'w').write('ran')"])
RENAME = ToolCall(
    "propose_edit",
    {"path": "calc.py", "old_text": "def add(a, b):", "new_text": "def plus(a, b):"},
)


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / ".agentls" / "agents").mkdir(parents=True)
    (root / ".agentls" / "agents" / "tester.yaml").write_text(TESTER)
    (root / "calc.py").write_text(SOURCE)
    return root.resolve()


def cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def run_args(server: ScriptedOpenAI, workspace: Path, *extra: str) -> list[str]:
    return [
        "--workspace",
        str(workspace),
        "run",
        "tester",
        "--file",
        str(workspace / "calc.py"),
        "--base-url",
        server.url,
        "--model",
        "scripted-model",
        *extra,
    ]


def tool_reply(server: ScriptedOpenAI, request: int = 1) -> str:
    message = server.requests[request]["messages"][-1]
    assert message["role"] == "tool"
    return str(message["content"])


# --- run_command -----------------------------------------------------------------------------


def test_without_a_terminal_a_command_is_refused_with_the_flag_that_allows_it(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(ToolCall("run_command", {"command": WRITE_MARKER}), Text("not run"))

    assert cli(*run_args(server, workspace, "--run-commands")) == 0

    assert not (workspace / "ran.txt").exists()
    reply = tool_reply(server)
    assert "no terminal to ask on" in reply
    assert f"--allow-command {shlex.quote(WRITE_MARKER)}" in reply
    err = capsys.readouterr().err
    assert "no terminal to ask on" in err
    # Nobody decided: the progress and the audit trail say so, not that the user denied it.
    assert "no one to ask" in err and "denied by the user" not in err
    with AuditStore.for_workspace(workspace) as store:
        (audited,) = [e.data for e in store.query(kinds=[EventKind.TOOL_CALL])]
    assert (audited["decision"], audited["decided_by"]) == ("deny", "no_approver")


def test_an_allow_command_pattern_runs_the_command_unasked(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(ToolCall("run_command", {"command": WRITE_MARKER}), Text("ran"))

    assert cli(*run_args(server, workspace, "--allow-command", f"{PY} -c **")) == 0

    assert (workspace / "ran.txt").read_text() == "ran"
    assert "exit code 0" in tool_reply(server)


def test_run_command_is_not_offered_without_a_flag(server: ScriptedOpenAI, workspace: Path) -> None:
    server.enqueue(Text("nothing to run"))
    assert cli(*run_args(server, workspace)) == 0
    offered = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert offered == {"read_file", "propose_edit"}


def test_a_bad_allow_command_pattern_is_an_argument_error(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(*run_args(server, workspace, "--allow-command", "pytest ** -q")) == 2
    err = capsys.readouterr().err
    assert "--allow-command: allow-list pattern 'pytest ** -q'" in err
    assert server.requests == []


# --- trust -----------------------------------------------------------------------------------


def test_untrusted_hides_the_workspace_agents_and_says_so(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--workspace", str(workspace), "--untrusted", "agents", "--json") == 0
    captured = capsys.readouterr()
    assert "tester" not in captured.out
    assert "1 agent definition in .agentls/agents/" in captured.err
    assert "Run without --untrusted" in captured.err


def test_the_cli_trusts_the_folder_it_is_run_in_by_default(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--workspace", str(workspace), "agents", "--json") == 0
    assert '"tester"' in capsys.readouterr().out


def test_untrusted_refuses_to_run_a_workspace_agent(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--untrusted", *run_args(server, workspace)) == 2
    assert "unknown agent 'tester'" in capsys.readouterr().err


# --- --confirm -------------------------------------------------------------------------------


def test_confirm_needs_apply(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(*run_args(server, workspace, "--confirm")) == 2
    assert "--confirm asks before writing each edit: use it with --apply" in capsys.readouterr().err


def test_confirm_without_a_terminal_writes_nothing_and_says_why(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(RENAME, Text("renamed"))

    cli(*run_args(server, workspace, "--apply", "--confirm"))

    assert (workspace / "calc.py").read_text() == SOURCE
    assert "no terminal to confirm on" in capsys.readouterr().err


# --- at a real terminal ----------------------------------------------------------------------


class Terminal:
    """`agentls` with a pseudo-terminal as stdin; stderr read until a question appears."""

    def __init__(self, argv: list[str], home: Path) -> None:
        self.master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLS_")}
        env.update(HOME=str(home), OPENAI_API_KEY="sk-test", COLUMNS="200")
        self.proc = subprocess.Popen(
            [PY, "-m", "agentls", *argv],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.err = b""

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while text.encode() not in self.err:
            ready, _, _ = select.select([fd], [], [], timeout)
            assert ready, f"no {text!r} on stderr; got {self.err.decode()!r}"
            chunk = os.read(fd, 4096)
            assert chunk, f"stderr ended before {text!r}: {self.err.decode()!r}"
            self.err += chunk

    def answer(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self) -> tuple[int, str]:
        _, rest = self.proc.communicate(timeout=120)
        os.close(self.master)
        self.err += rest
        return self.proc.returncode, self.err.decode()


def test_at_a_terminal_the_user_approves_a_command(
    server: ScriptedOpenAI, workspace: Path, tmp_path: Path
) -> None:
    server.enqueue(ToolCall("run_command", {"command": WRITE_MARKER}), Text("ran"))
    terminal = Terminal(run_args(server, workspace, "--run-commands"), tmp_path)

    terminal.wait_for("Run it? [o]nce, [a]lways this session, [N]o:")
    assert WRITE_MARKER in terminal.err.decode()
    terminal.answer("o")
    status, _ = terminal.finish()

    assert status == 0
    assert (workspace / "ran.txt").read_text() == "ran"


def test_at_a_terminal_the_user_declines_an_edit(
    server: ScriptedOpenAI, workspace: Path, tmp_path: Path
) -> None:
    server.enqueue(RENAME, Text("renamed"))
    terminal = Terminal(run_args(server, workspace, "--apply", "--confirm"), tmp_path)

    terminal.wait_for("Write this edit by 'tester' to calc.py (line 1)? [y/N]:")
    assert "+def plus(a, b):" in terminal.err.decode(), "the edit's diff is shown first"
    terminal.answer("n")
    _, err = terminal.finish()

    assert (workspace / "calc.py").read_text() == SOURCE
    assert "the user declined the edit" in err


def test_at_a_terminal_the_user_confirms_an_edit(
    server: ScriptedOpenAI, workspace: Path, tmp_path: Path
) -> None:
    server.enqueue(RENAME, Text("renamed"))
    terminal = Terminal(run_args(server, workspace, "--apply", "--confirm"), tmp_path)

    terminal.wait_for("[y/N]:")
    terminal.answer("y")
    status, _ = terminal.finish()

    assert status == 0
    assert (workspace / "calc.py").read_text().startswith("def plus(a, b):")


def test_the_progress_and_the_audit_say_who_allowed_a_command_and_how_it_ended(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(ToolCall("run_command", {"command": WRITE_MARKER}), Text("ran"))
    cli(*run_args(server, workspace, "--allow-command", f"{PY} -c **"))
    progress = capsys.readouterr().err
    assert "allowed by pattern" in progress and "exit code 0" in progress

    assert cli("--workspace", str(workspace), "audit", "--limit", "50") == 0
    trail = capsys.readouterr().out
    assert "run_command(" in trail
    assert "allowed by pattern" in trail and "exit code 0]" in trail


def test_parallel_runs_allow_listed_commands_too(server: ScriptedOpenAI, workspace: Path) -> None:
    server.enqueue(ToolCall("run_command", {"command": WRITE_MARKER}), Text("ran"))

    status = cli(
        "--workspace",
        str(workspace),
        "parallel",
        "--agent",
        "tester",
        "--file",
        str(workspace / "calc.py"),
        "--base-url",
        server.url,
        "--model",
        "scripted-model",
        "--allow-command",
        f"{PY} -c **",
    )

    assert status == 0
    assert (workspace / "ran.txt").read_text() == "ran"
