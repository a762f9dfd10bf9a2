"""run_command in the engine: offered only when enabled in a trusted workspace; each command runs
only when an allow-list pattern matches or the user approves; it runs in the workspace, without a
shell, with no secrets in its environment, a time limit that kills its process tree, and capped
output; every request, decision and outcome lands in the audit trail.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.rig.eventually import aeventually
from tests.rig.runtimes import runtime_over, scripted_model
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

from agentls.core.audit import AuditStore
from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.engine import EngineSettings
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.runtime import AgentRuntime
from agentls.core.tools.command import (
    AllowPattern,
    CommandPolicy,
    CommandRequest,
    CommandSettings,
    Decision,
    ParsedCommand,
    command_env,
)
from agentls.core.tools.framing import unframe

PY = sys.executable
TESTER = AgentDefinition(
    name="tester",
    description="Writes and runs tests",
    instructions="Run the tests.",
    mode=Mode.TOOLS,
    tools=["read_file", "run_command"],
    max_turns=4,
)


def py(code: str) -> str:
    """A command line running this interpreter on `code`."""
    return shlex.join([PY, "-c", code])


class Approvals:
    """An approver that answers from a script and records what it was asked."""

    def __init__(self, *answers: Decision) -> None:
        self.answers = list(answers)
        self.asked: list[CommandRequest] = []
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()
        self.hold = False

    async def __call__(self, request: CommandRequest) -> Decision:
        self.asked.append(request)
        self.waiting.set()
        if self.hold:
            await self.release.wait()
        return self.answers.pop(0)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "marker.txt").write_text("in the workspace\n")
    return root.resolve()


@pytest.fixture
def audit() -> AuditStore:
    return AuditStore(None)


@pytest.fixture
async def runtime(
    server: ScriptedOpenAI, workspace: Path, audit: AuditStore
) -> AsyncIterator[AgentRuntime]:
    model = scripted_model(server.url)
    rt = runtime_over(
        workspace,
        model,
        [TESTER],
        audit=audit,
        commands=CommandPolicy(workspace, CommandSettings(enabled=True)),
    )
    yield rt
    await model.aclose()


def allow(runtime: AgentRuntime, *patterns: str, timeout: float = 120.0) -> None:
    assert runtime.commands is not None
    runtime.commands.settings = CommandSettings(
        enabled=True, allow=list(patterns), timeout_seconds=timeout
    )


def approve_with(runtime: AgentRuntime, approvals: Approvals) -> None:
    assert runtime.commands is not None
    runtime.commands.approver = approvals


def tool_reply(server: ScriptedOpenAI, request: int = 1) -> str:
    """What the model was sent back for the last tool call before request number `request`."""
    message = server.requests[request]["messages"][-1]
    assert message["role"] == "tool"
    return unframe(str(message["content"]))


def tool_events(audit: AuditStore) -> list[RunEvent]:
    return [e for e in audit.query(kinds=[EventKind.TOOL_CALL])]


def offered_tools(server: ScriptedOpenAI) -> set[str]:
    return {t["function"]["name"] for t in server.requests[0].get("tools", [])}


# --- when the tool exists --------------------------------------------------------------------


async def test_run_command_is_not_offered_unless_enabled(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    assert runtime.commands is not None
    runtime.commands.settings = CommandSettings()
    server.enqueue(Text("done"))
    await runtime.delegate("tester", "Run the tests")
    assert offered_tools(server) == {"read_file"}


async def test_run_command_is_never_offered_in_an_untrusted_workspace(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    assert runtime.commands is not None
    runtime.commands.trusted = False
    server.enqueue(Text("done"))
    await runtime.delegate("tester", "Run the tests")
    assert offered_tools(server) == {"read_file"}


async def test_run_command_is_offered_when_enabled_to_agents_that_list_it(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(Text("done"))
    await runtime.delegate("tester", "Run the tests")
    assert offered_tools(server) == {"read_file", "run_command"}


def test_the_engine_settings_keep_run_command_off_by_default() -> None:
    assert EngineSettings().run_command.enabled is False


# --- allow-list and approval -----------------------------------------------------------------


async def test_an_allow_listed_command_runs_and_its_output_goes_back_to_the_model(
    server: ScriptedOpenAI, runtime: AgentRuntime, audit: AuditStore
) -> None:
    allow(runtime, f"{PY} -c **")
    server.enqueue(
        ToolCall("run_command", {"command": py("print('3 passed'); raise SystemExit(3)")}),
        Text("tests ran"),
    )
    result = await runtime.delegate("tester", "Run the tests")
    assert result.status is RunStatus.FINISHED
    reply = tool_reply(server)
    assert "3 passed" in reply
    assert "exit code 3" in reply
    (event,) = tool_events(audit)
    assert event.data["decision"] == "run_once"
    assert event.data["decided_by"] == "allow_list"
    assert event.data["pattern"].endswith("/python -c **")
    assert event.data["exit_code"] == 3


async def test_the_command_runs_in_the_workspace_root(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    allow(runtime, f"{PY} -c **")
    server.enqueue(
        ToolCall("run_command", {"command": py("print(open('marker.txt').read())")}), Text("ok")
    )
    await runtime.delegate("tester", "Read the marker")
    assert "in the workspace" in tool_reply(server)


async def test_a_command_the_user_denies_is_not_run_and_the_model_gets_an_error(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path, audit: AuditStore
) -> None:
    approvals = Approvals(Decision.deny())
    approve_with(runtime, approvals)
    command = py("open('ran.txt', 'w').write('x')")
    server.enqueue(ToolCall("run_command", {"command": command}), Text("could not run"))
    await runtime.delegate("tester", "Run it")
    assert not (workspace / "ran.txt").exists()
    assert "error: the command was not run: the user denied it" in tool_reply(server)
    (event,) = tool_events(audit)
    assert event.data["decision"] == "deny"
    assert event.data["decided_by"] == "user"
    assert event.data["is_error"] is True
    assert "exit_code" not in event.data


async def test_the_user_is_asked_with_the_exact_command_line_agent_and_goal(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    approvals = Approvals(Decision.run_once())
    approve_with(runtime, approvals)
    server.enqueue(ToolCall("run_command", {"command": py("print( 'a  b' )")}), Text("ok"))
    result = await runtime.delegate("tester", "Check spacing")
    (asked,) = approvals.asked
    assert asked.command == shlex.join([PY, "-c", "print( 'a  b' )"])
    assert (asked.agent, asked.goal, asked.run_id) == ("tester", "Check spacing", result.run_id)
    assert asked.cwd == workspace
    assert asked.shell is False
    assert "a  b" in tool_reply(server)


async def test_always_for_this_session_asks_once_per_exact_command(
    server: ScriptedOpenAI, runtime: AgentRuntime, audit: AuditStore
) -> None:
    approvals = Approvals(Decision.always(), Decision.deny())
    approve_with(runtime, approvals)
    command = py("print('hi')")
    server.enqueue(
        ToolCall("run_command", {"command": command}),
        ToolCall("run_command", {"command": command}),
        Text("ok"),
    )
    await runtime.delegate("tester", "Twice")
    assert len(approvals.asked) == 1
    assert [e.data["decided_by"] for e in tool_events(audit)] == ["user", "session"]
    assert [e.data["decision"] for e in tool_events(audit)] == ["always", "run_once"]


async def test_with_no_one_to_ask_a_command_is_refused_with_how_to_allow_it(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path, audit: AuditStore
) -> None:
    server.enqueue(ToolCall("run_command", {"command": py("print(1)")}), Text("ok"))
    await runtime.delegate("tester", "Run")
    assert "runCommand.allow" in tool_reply(server)
    (event,) = tool_events(audit)
    assert event.data["decided_by"] == "no_approver"


async def test_cancel_while_waiting_for_approval_runs_nothing(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    approvals = Approvals(Decision.run_once())
    approvals.hold = True
    approve_with(runtime, approvals)
    server.enqueue(
        ToolCall("run_command", {"command": py("open('ran.txt', 'w').write('x')")}), Text("ok")
    )
    run = asyncio.create_task(runtime.delegate("tester", "Run"))
    await approvals.waiting.wait()
    runtime.cancel()
    result = await run
    assert result.status is RunStatus.CANCELLED
    assert not (workspace / "ran.txt").exists()


async def test_a_command_request_cut_short_by_a_cancel_is_still_audited(
    server: ScriptedOpenAI, runtime: AgentRuntime, audit: AuditStore
) -> None:
    approvals = Approvals(Decision.run_once())
    approvals.hold = True
    approve_with(runtime, approvals)
    command = py("print(1)")
    server.enqueue(ToolCall("run_command", {"command": command}), Text("ok"))
    run = asyncio.create_task(runtime.delegate("tester", "Run"))
    await approvals.waiting.wait()
    runtime.cancel()
    await run
    (event,) = tool_events(audit)
    assert event.error == "cancelled"
    assert event.data["command"].endswith(" -c 'print(1)'")
    assert (event.data["decision"], event.data["cancelled"]) == ("none", True)


# --- no shell --------------------------------------------------------------------------------


async def test_shell_syntax_is_refused_without_asking(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    approvals = Approvals()
    approve_with(runtime, approvals)
    server.enqueue(ToolCall("run_command", {"command": "echo hi > out.txt"}), Text("ok"))
    await runtime.delegate("tester", "Write a file")
    assert approvals.asked == []
    assert not (workspace / "out.txt").exists()
    assert "without a shell" in tool_reply(server)


async def test_quoted_shell_characters_are_plain_arguments(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path
) -> None:
    allow(runtime, f"{PY} -c **")
    code = "import sys; print(sys.argv[1:])"
    server.enqueue(
        ToolCall(
            "run_command", {"command": f"{shlex.join([PY, '-c', code])} 'a; rm -rf x' '$HOME'"}
        ),
        Text("ok"),
    )
    await runtime.delegate("tester", "Args")
    assert "['a; rm -rf x', '$HOME']" in tool_reply(server)


async def test_a_shell_pattern_runs_that_exact_line_through_the_shell(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path, audit: AuditStore
) -> None:
    allow(runtime, "shell: echo hi > out.txt && echo done")
    server.enqueue(
        ToolCall("run_command", {"command": "  echo hi > out.txt && echo done "}), Text("ok")
    )
    await runtime.delegate("tester", "Shell")
    assert (workspace / "out.txt").read_text() == "hi\n"
    assert "done" in tool_reply(server)
    (event,) = tool_events(audit)
    assert event.data["shell"] is True


# --- limits ----------------------------------------------------------------------------------


def test_the_environment_of_a_command_holds_no_secrets() -> None:
    source = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "OPENAI_API_KEY": "sk-live",
        "GITHUB_TOKEN": "ghp_x",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "MY_APP_SECRET_SALT": "salt",
        "DATABASE_URL": "postgres://u:p@h/db",
    }
    env = command_env(source=source)
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/home/u" and env["LANG"] == "C.UTF-8"
    assert not {"OPENAI_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert not {"MY_APP_SECRET_SALT", "DATABASE_URL"} & set(env)


async def test_a_running_command_sees_no_secret_from_the_server_environment(
    server: ScriptedOpenAI, runtime: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-do-not-leak-1234")
    monkeypatch.setenv("GH_TOKEN", "ghp_do_not_leak_5678")
    monkeypatch.setenv("SOME_SECRET", "hunter2")
    allow(runtime, f"{PY} -c **")
    server.enqueue(
        ToolCall("run_command", {"command": py("import os; print(sorted(os.environ))")}),
        Text("ok"),
    )
    await runtime.delegate("tester", "Env")
    reply = tool_reply(server)
    assert "'PATH'" in reply
    for leaked in ("OPENAI_API_KEY", "GH_TOKEN", "SOME_SECRET"):
        assert leaked not in reply


def test_passing_a_secret_looking_variable_through_is_refused() -> None:
    with pytest.raises(ValidationError, match="'DEPLOY_TOKEN' looks like a secret"):
        CommandSettings(pass_env=["PYTHONPATH", "DEPLOY_TOKEN"])


async def test_variables_the_user_passes_through_reach_the_command(
    server: ScriptedOpenAI, runtime: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", "/opt/jdk")
    assert runtime.commands is not None
    runtime.commands.settings = CommandSettings(
        enabled=True, allow=[f"{PY} -c **"], pass_env=["JAVA_HOME"]
    )
    server.enqueue(
        ToolCall("run_command", {"command": py("import os; print(os.environ['JAVA_HOME'])")}),
        Text("ok"),
    )
    await runtime.delegate("tester", "Env")
    assert "/opt/jdk" in tool_reply(server)


async def test_long_output_is_capped_and_says_so_keeping_head_and_tail(
    server: ScriptedOpenAI, runtime: AgentRuntime, audit: AuditStore
) -> None:
    allow(runtime, f"{PY} -c **")
    code = "print('FIRST'); print('x' * 500000); print('LAST SUMMARY')"
    server.enqueue(ToolCall("run_command", {"command": py(code)}), Text("ok"))
    await runtime.delegate("tester", "Loud")
    reply = tool_reply(server)
    assert "FIRST" in reply and "LAST SUMMARY" in reply
    assert "[output truncated:" in reply
    assert len(reply) < 25_000
    (event,) = tool_events(audit)
    assert event.data["output_bytes_omitted"] > 400_000


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def _until_dead(pid: int) -> None:
    await aeventually(lambda: not _alive(pid), f"process {pid} to end")


async def _until_file(path: Path) -> str:
    await aeventually(lambda: path.exists() and path.read_text().strip(), f"{path.name}")
    return path.read_text().strip()


SPAWN = "sleep 300 & echo $! > child.pid; wait"


async def test_a_command_over_its_time_limit_is_killed_with_its_children(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path, audit: AuditStore
) -> None:
    allow(runtime, "/bin/sh -c **", timeout=2)
    server.enqueue(ToolCall("run_command", {"command": shlex.join(["/bin/sh", "-c", SPAWN])}))
    server.enqueue(Text("too slow"))
    result = await runtime.delegate("tester", "Hang")
    assert result.status is RunStatus.FINISHED
    assert "killed after the 2 s time limit" in tool_reply(server)
    child = int((workspace / "child.pid").read_text())
    await asyncio.wait_for(_until_dead(child), 10)
    (event,) = tool_events(audit)
    assert event.data["timed_out"] is True
    assert event.data["exit_code"] is None


async def test_cancelling_the_run_kills_the_command_and_its_children(
    server: ScriptedOpenAI, runtime: AgentRuntime, workspace: Path, audit: AuditStore
) -> None:
    allow(runtime, "/bin/sh -c **", timeout=600)
    server.enqueue(ToolCall("run_command", {"command": shlex.join(["/bin/sh", "-c", SPAWN])}))
    run = asyncio.create_task(runtime.delegate("tester", "Hang"))
    child = int(await asyncio.wait_for(_until_file(workspace / "child.pid"), 30))
    assert _alive(child)
    runtime.cancel()
    result = await run
    assert result.status is RunStatus.CANCELLED
    await asyncio.wait_for(_until_dead(child), 10)
    (event,) = tool_events(audit)
    assert (event.data["decided_by"], event.data["cancelled"]) == ("allow_list", True)


async def test_an_unknown_program_is_an_error_for_the_model(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    allow(runtime, "no-such-program-xyz --version")
    server.enqueue(
        ToolCall("run_command", {"command": "no-such-program-xyz --version"}), Text("ok")
    )
    result = await runtime.delegate("tester", "Run")
    assert result.status is RunStatus.FINISHED
    assert "program 'no-such-program-xyz' not found" in tool_reply(server)


# --- allow-list syntax -----------------------------------------------------------------------


def parsed(*argv: str) -> ParsedCommand:
    return ParsedCommand(line=shlex.join(argv), argv=argv)


@pytest.mark.parametrize(
    ("pattern", "argv", "allowed"),
    [
        ("pytest **", ("pytest",), True),
        ("pytest **", ("pytest", "tests/test_a.py"), True),
        ("pytest", ("pytest",), True),
        ("pytest", ("pytest", "-q"), False),
        ("ruff check *", ("ruff", "check", "src"), True),
        ("ruff check *", ("ruff", "check", "src", "tests"), False),
        ("python -m pytest **", ("python", "-m", "pip", "install", "x"), False),
        ("npm test", ("npm", "test"), True),
        ("npm test", ("npm", "testx"), False),
        ("pytest tests/*", ("pytest", "tests/test_a.py"), True),
        ("pytest tests/*", ("pytest", "src/evil.py"), False),
        ("pytest tests/*", ("pytest", "tests/../src/evil.py"), False),
        ("'my tool' run", ("my tool", "run"), True),
        ("pytest -q **", ("pytest", "-q", "tests/test_a.py"), True),
        ("pytest **", ("pytest", "-q", "tests/test_a.py"), False),
        ("pytest **", ("pytest", "--basetemp=/tmp/x"), False),
        ("ruff check *", ("ruff", "check", "--fix"), False),
    ],
)
def test_allow_list_patterns_match_word_by_word(
    pattern: str, argv: tuple[str, ...], allowed: bool, workspace: Path
) -> None:
    assert AllowPattern.parse(pattern).matches(parsed(*argv), workspace) is allowed


def test_a_word_pattern_never_allows_a_shell_line(workspace: Path) -> None:
    line = ParsedCommand(line="pytest; rm -rf /", argv=("/bin/sh", "-c", "x"), shell=True)
    assert not AllowPattern.parse("pytest **").matches(line, workspace)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "must start with a program name"),
        ("** foo", "must start with a program name"),
        ("pytest ** -q", "'\\*\\*' may only be the last word"),
        ("pytest -* **", "names options with a glob"),
        ("py* **", "the program must be written out"),
        ("pytest 'unclosed", "No closing quotation"),
        ("shell:   ", "nothing after 'shell:'"),
    ],
)
def test_a_bad_allow_list_pattern_is_refused_naming_it(pattern: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CommandSettings(allow=["pytest **", pattern])


@pytest.mark.parametrize(
    "command",
    [
        "pytest -q\x1b[2K\rls",  # a terminal escape that would redraw the prompt
        "pytest\nrm -rf build",  # a second line
        "pytest 'tests/\u202etxt.py'",  # a right-to-left override
        "pytest\u200b -q",  # an invisible character
        "pytest -q tests/\U000e0061\U000e0062.py",  # tag characters: invisible, yet bytes
        "pytest -q te\u00adsts",  # a soft hyphen, shown as nothing by most terminals
        "pytest -q \ue000",  # a private-use character any font may draw as it likes
    ],
    ids=["escape", "newline", "bidi", "zero-width", "tags", "soft-hyphen", "private-use"],
)
async def test_a_command_line_that_could_deceive_the_reader_is_refused_unasked(
    server: ScriptedOpenAI, runtime: AgentRuntime, command: str
) -> None:
    approvals = Approvals()
    approve_with(runtime, approvals)
    server.enqueue(ToolCall("run_command", {"command": command}), Text("ok"))
    await runtime.delegate("tester", "Deceive")
    assert approvals.asked == []
    assert "control or invisible character" in tool_reply(server)


async def test_waiting_for_the_users_answer_is_not_cut_at_the_generic_tool_limit(
    workspace: Path,
) -> None:
    from agentls.core.tools.base import call_with_limit

    approvals = Approvals(Decision.run_once())
    approvals.hold = True
    policy = CommandPolicy(workspace, CommandSettings(enabled=True), approver=approvals)
    (tool,) = policy.tools_for(["run_command"], "run", "tester", "goal").values()

    async def answer_late() -> None:
        await approvals.waiting.wait()
        await asyncio.sleep(0.2)  # well past the 0.01 s limit below
        approvals.release.set()

    answering = asyncio.create_task(answer_late())
    result = await call_with_limit(tool, {"command": py("print('late but ran')")}, seconds=0.01)
    await answering
    assert "late but ran" in result.content
