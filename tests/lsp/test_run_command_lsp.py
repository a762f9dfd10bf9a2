"""run_command in the editor: the server asks with window/showMessageRequest (the exact command
line; Run once / Always for this session / Deny) unless an allow-list pattern matches, and the
answer, the command's output or the refusal reach the model and the audit trail.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

from agentls.core.tools.framing import unframe

PY = sys.executable
TESTER = """\
name: tester
description: Runs the tests
instructions: Run the tests and report.
mode: tools
tools: [read_file, run_command]
max_turns: 4
"""


def py(code: str) -> str:
    return shlex.join([PY, "-c", code])


# A command whose effect shows whether it ran: it leaves ran.txt in the workspace.
LEAVES_A_FILE = py("open('ran.txt', 'w').write('x')")


class Questions:
    """The editor's side of window/showMessageRequest: scripted answers, recorded questions."""

    def __init__(self) -> None:
        self.answers: list[str | None] = []
        self.asked: list[types.ShowMessageRequestParams] = []


@pytest.fixture
def workspace(workspace: Path) -> Path:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "tester.yaml").write_text(TESTER)
    return workspace


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {**settings, "runCommand": {"enabled": True, "allow": [f"{PY} -c print(42)"]}}


@pytest.fixture
def questions(client: LanguageClient, editor: Editor) -> Questions:
    recorded = Questions()

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def show_message_request(
        params: types.ShowMessageRequestParams,
    ) -> types.MessageActionItem | None:
        recorded.asked.append(params)
        editor.note()
        title = recorded.answers.pop(0)
        return types.MessageActionItem(title=title) if title is not None else None

    return recorded


async def delegate(client: LanguageClient, workspace: Path) -> dict[str, Any]:
    uri = open_file(client, workspace / "src" / "app.py")
    result: dict[str, Any] = await execute(
        client, "agentls.delegate", {"agent": "tester", "goal": "Run the tests", "uri": uri}
    )
    return result


async def delegate_calling(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, command: str, then: str = "ok"
) -> dict[str, Any]:
    """A tester run whose model calls run_command with `command`, then answers `then`."""
    model.enqueue(ToolCall("run_command", {"command": command}), Text(then))
    return await delegate(client, workspace)


def tool_reply(model: ScriptedOpenAI, request: int = 1) -> str:
    message = model.requests[request]["messages"][-1]
    assert message["role"] == "tool"
    return unframe(str(message["content"]))


def command_events(editor: Editor) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in editor.events
        if e["kind"] == "tool_call" and e["data"]["tool"] == "run_command"
    ]


async def test_the_user_is_asked_with_the_exact_command_line(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    questions: Questions,
) -> None:
    questions.answers = ["Run once"]

    await delegate_calling(client, workspace, model, py("print('ok')"), "done")

    (asked,) = questions.asked
    assert shlex.join([PY, "-c", "print('ok')"]) in asked.message
    assert "'tester'" in asked.message and "Run the tests" in asked.message
    assert [a.title for a in asked.actions or []] == ["Run once", "Always for this session", "Deny"]


async def test_an_approved_command_runs_and_its_output_reaches_the_model(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    questions: Questions,
) -> None:
    questions.answers = ["Run once"]

    result = await delegate_calling(client, workspace, model, py("print('7 passed')"), "all green")

    assert result["status"] == "finished"
    assert "7 passed" in tool_reply(model)
    (audited,) = command_events(editor)
    assert (audited["decision"], audited["decidedBy"], audited["exitCode"]) == (
        "run_once",
        "user",
        0,
    )


async def test_a_denied_command_is_not_run_and_the_model_is_told(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    questions: Questions,
) -> None:
    questions.answers = ["Deny"]

    result = await delegate_calling(client, workspace, model, LEAVES_A_FILE, "could not run them")

    assert result["status"] == "finished"
    assert not (workspace / "ran.txt").exists()
    assert "error: the command was not run: the user denied it" in tool_reply(model)
    (audited,) = command_events(editor)
    assert audited["decision"] == "deny"
    assert audited["isError"] is True


async def test_a_dismissed_question_counts_as_deny(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, questions: Questions
) -> None:
    questions.answers = [None]

    await delegate_calling(client, workspace, model, LEAVES_A_FILE)

    assert not (workspace / "ran.txt").exists()
    assert "the user dismissed the question" in tool_reply(model)


async def test_an_allow_listed_command_runs_without_a_question(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    questions: Questions,
) -> None:

    await delegate_calling(client, workspace, model, py("print(42)"), "42")

    assert questions.asked == []
    assert "42" in tool_reply(model)
    (audited,) = command_events(editor)
    assert audited["decidedBy"] == "allow_list"


async def test_always_for_this_session_is_not_asked_again(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, questions: Questions
) -> None:
    questions.answers = ["Always for this session"]
    command = py("print('again')")
    model.enqueue(ToolCall("run_command", {"command": command}), Text("first"))
    model.enqueue(ToolCall("run_command", {"command": command}), Text("second"))

    await delegate(client, workspace)
    await delegate(client, workspace)

    assert len(questions.asked) == 1
    assert "again" in tool_reply(model, request=3)


async def test_turning_the_setting_off_takes_the_tool_away(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    client.set_configuration({"runCommand": {"enabled": False}}, section="agentls")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    seen = editor.configuration_requests
    await editor.wait_until(lambda: editor.configuration_requests > seen)
    model.enqueue(Text("nothing to run"))
    await delegate(client, workspace)

    assert "tools" in model.requests[0]
    offered = {t["function"]["name"] for t in model.requests[0]["tools"]}
    assert offered == {"read_file"}


async def test_cancelling_the_run_withdraws_an_open_question_and_runs_nothing(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    asked = asyncio.Event()
    withdrawn = asyncio.Event()

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    async def never_answered(params: types.ShowMessageRequestParams) -> None:
        asked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            withdrawn.set()
            raise

    run = asyncio.create_task(delegate_calling(client, workspace, model, LEAVES_A_FILE))
    await asyncio.wait_for(asked.wait(), 30)

    await execute(client, "agentls.cancel", {})
    result = await run

    assert result["status"] == "cancelled"
    await asyncio.wait_for(withdrawn.wait(), 30)
    assert not (workspace / "ran.txt").exists()


class TestABadAllowListPattern:
    @pytest.fixture
    def settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {**settings, "runCommand": {"enabled": True, "allow": ["pytest ** -q"]}}

    async def test_is_reported_by_name_and_nothing_runs_unasked(
        self,
        client: LanguageClient,
        workspace: Path,
        model: ScriptedOpenAI,
        editor: Editor,
        questions: Questions,
    ) -> None:
        problem = await editor.wait_until(
            lambda: next((m.message for m in client.messages if "runCommand" in m.message), None)
        )
        assert "agentls.runCommand.allow" in problem and "'pytest ** -q'" in problem
        questions.answers = ["Deny"]

        await delegate_calling(client, workspace, model, LEAVES_A_FILE)

        assert len(questions.asked) == 1, "with no valid allow-list, the user is asked"
        assert not (workspace / "ran.txt").exists()


@pytest.mark.parametrize(
    "editor_settings", [{"runCommand": {"enabled": True, "allow": [], "timeoutSeconds": 1}}]
)
async def test_a_timed_out_command_is_mirrored_to_the_log_in_single_lines(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    questions: Questions,
    editor_settings: dict[str, Any],
) -> None:
    # Generic clients (Neovim, Emacs) read the trail in window/logMessage, one line per event.
    slow = py("import time; print('line one'); print('line two', flush=True); time.sleep(30)")
    questions.answers = ["Run once"]

    result = await delegate_calling(client, workspace, model, slow, "it hung")

    assert "killed after the 1 s time limit" in tool_reply(model)
    run = result["runId"][:8]
    mirrored = [m.message for m in client.log_messages if f"run={run}" in m.message]
    assert any("run_command" in line for line in mirrored)
    assert all("\n" not in line and "\r" not in line for line in mirrored), mirrored
