"""`agentls acp` driven by the Python SDK's own client side over stdio: edits on disk (line endings
and mode kept), reject and always-allow, /parallel, /create, and sessions across restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    FileSystemCapabilities,
    RequestPermissionResponse,
)
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import Hang, Reply, ScriptedOpenAI, Text, ToolCall

import acp

SOURCE = "def add(a, b):\r\n    return a + b\r\n"
NEW_ADD = "def add(left, right):\n    return left + right\n"


class Panel:
    """The client side: records updates and answers permission requests with `choice`."""

    def __init__(self, choice: str = "allow-once", while_asked: Any = None) -> None:
        self.choice = choice
        self.while_asked = while_asked  # what the user does before answering
        self.updates: list[Any] = []
        self.permissions: list[Any] = []

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)

    async def request_permission(
        self, session_id: str, tool_call: Any, options: list[Any], **kwargs: Any
    ) -> RequestPermissionResponse:
        self.permissions.append(tool_call)
        if self.while_asked is not None:
            self.while_asked()
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=self.choice)
        )

    def text(self) -> str:
        return "".join(
            u.content.text for u in self.updates if u.session_update == "agent_message_chunk"
        )

    def of_kind(self, kind: str) -> list[Any]:
        return [u for u in self.updates if u.session_update == kind]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    app = root / "app.py"
    app.write_bytes(SOURCE.encode())
    app.chmod(0o755)
    return root


@asynccontextmanager
async def agent(
    panel: Panel,
    server: ScriptedOpenAI,
    workspace: Path,
    *options: str,
    client_fs: bool = False,
) -> AsyncIterator[acp.ClientSideConnection]:  # type: ignore[name-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTLS_"))}
    env |= {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-test"}
    async with acp.spawn_agent_process(
        panel,  # type: ignore[arg-type]
        sys.executable,
        "-m",
        "agentls",
        "acp",
        "--model",
        "scripted-model",
        *options,
        env=env,
        cwd=workspace,
    ) as (conn, _process):
        await conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=client_fs, write_text_file=client_fs)
            ),
        )
        yield conn


@asynccontextmanager
async def session_of(
    panel: Panel, server: ScriptedOpenAI, workspace: Path, *options: str, client_fs: bool = False
) -> AsyncIterator[tuple[Any, str]]:
    """The agent started with `options` and a new session in the workspace: (conn, session id)."""
    async with agent(panel, server, workspace, *options, client_fs=client_fs) as conn:
        session = await conn.new_session(cwd=str(workspace))
        yield conn, session.session_id


async def prompt_once(
    panel: Panel,
    server: ScriptedOpenAI,
    workspace: Path,
    *blocks: Any,
    options: tuple[str, ...] = (),
    client_fs: bool = False,
) -> Any:
    """Start the agent, send one prompt in a new session, stop it; the prompt's response."""
    async with session_of(panel, server, workspace, *options, client_fs=client_fs) as (conn, sid):
        return await conn.prompt(session_id=sid, prompt=list(blocks))


def link(path: Path) -> Any:
    return acp.resource_link_block(name=path.name, uri=path.as_uri())


async def test_edit_without_client_fs_is_written_to_disk_keeping_crlf_and_mode(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text(f"```python\n{NEW_ADD}```"))
    panel = Panel()
    response = await prompt_once(
        panel,
        server,
        workspace,
        acp.text_block("/refactor better names"),
        link(workspace / "app.py"),
    )
    assert response.stop_reason == "end_turn"
    app = workspace / "app.py"
    assert app.read_bytes() == NEW_ADD.replace("\n", "\r\n").encode()
    assert stat.S_IMODE(app.stat().st_mode) == 0o755
    assert len(panel.permissions) == 1


async def test_rejected_edit_leaves_the_file_and_says_why(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text(f"```python\n{NEW_ADD}```"))
    panel = Panel(choice="reject")
    await prompt_once(
        panel, server, workspace, acp.text_block("/refactor"), link(workspace / "app.py")
    )
    assert (workspace / "app.py").read_bytes() == SOURCE.encode()
    (closing,) = [
        u
        for u in panel.of_kind("tool_call_update")
        if u.tool_call_id == panel.permissions[0].tool_call_id
    ]
    assert closing.status == "failed"
    assert "rejected by the user" in closing.content[0].content.text


async def test_edit_is_not_written_over_a_file_changed_while_asking(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text(f"```python\n{NEW_ADD}```"))
    app = workspace / "app.py"
    changed = "def plus(a, b):\n    return a + b\n"
    panel = Panel(while_asked=lambda: app.write_text(changed, encoding="utf-8"))
    await prompt_once(panel, server, workspace, acp.text_block("/refactor"), link(app))
    assert app.read_text(encoding="utf-8") == changed
    closing = panel.of_kind("tool_call_update")[-1]
    assert closing.status == "failed"
    assert "app.py changed where the edit applies" in closing.content[0].content.text


async def test_always_allow_writes_later_edits_without_asking(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(
        Text(f"```python\n{NEW_ADD}```"), Text("```python\ndef add(x, y):\n    return x + y\n```")
    )
    panel = Panel(choice="allow-always")
    async with session_of(panel, server, workspace) as (conn, sid):
        for _ in range(2):
            await conn.prompt(
                session_id=sid,
                prompt=[acp.text_block("/refactor"), link(workspace / "app.py")],
            )
    assert len(panel.permissions) == 1
    assert b"def add(x, y):\r\n" in (workspace / "app.py").read_bytes()


async def test_parallel_runs_each_agent_and_reports_each_result(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("Looks fine."), Text("Looks fine."))
    panel = Panel()
    response = await prompt_once(
        panel,
        server,
        workspace,
        acp.text_block("/parallel review,explain check it"),
        link(workspace / "app.py"),
    )
    assert response.stop_reason == "end_turn"
    text = panel.text()
    assert "### review (finished" in text and "### explain (finished" in text
    assert len(server.requests) == 2


async def test_create_makes_an_agent_runs_it_and_offers_it_as_a_command(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    definition = (
        '{"name": "todo-lister", "description": "Lists the TODO comments", '
        '"instructions": "List every TODO comment with its line.", "mode": "answer"}'
    )
    server.enqueue(Text(definition), Text("There are no TODOs."))
    panel = Panel()
    response = await prompt_once(
        panel,
        server,
        workspace,
        acp.text_block("/create an agent that lists TODOs"),
        link(workspace / "app.py"),
    )
    assert response.stop_reason == "end_turn"
    assert "Created **todo-lister**" in panel.text()
    assert panel.text().endswith("There are no TODOs.")
    offers = panel.of_kind("available_commands_update")
    assert "todo-lister" in [c.name for c in offers[-1].available_commands]


async def test_a_session_is_listed_and_loaded_after_the_agent_restarts(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("It adds two numbers."))
    async with session_of(Panel(), server, workspace) as (conn, first):
        await conn.prompt(session_id=first, prompt=[acp.text_block("/explain what is add?")])
    panel = Panel()
    async with agent(panel, server, workspace) as conn:
        listed = await conn.list_sessions(cwd=str(workspace))
        assert [s.session_id for s in listed.sessions] == [first]
        await conn.load_session(cwd=str(workspace), session_id=first)
    users = [u.content.text for u in panel.of_kind("user_message_chunk")]
    assert users == ["/explain what is add?"]
    assert "It adds two numbers." in panel.text()


async def test_loading_an_unknown_session_is_an_error_naming_it(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    async with agent(Panel(), server, workspace) as conn:
        with pytest.raises(acp.RequestError) as caught:
            await conn.load_session(cwd=str(workspace), session_id="0123abcd")
    assert "0123abcd" in str(caught.value.data)


async def test_editor_context_that_is_not_a_file_goes_into_the_goal(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("Bien."))
    rule = acp.resource_block(
        acp.embedded_text_resource("zed:///agent/rules/1", "Always answer in French.")
    )
    panel = Panel()
    response = await prompt_once(
        panel, server, workspace, acp.text_block("/explain"), rule, link(workspace / "app.py")
    )
    assert response.stop_reason == "end_turn"
    user = server.requests[0]["messages"][1]["content"]
    assert "Always answer in French." in user and "app.py" in user


async def test_cancel_stops_every_run_of_a_parallel_prompt(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    from agentls.core.audit import AuditStore

    server.enqueue(Hang(60), Hang(60))
    panel = Panel()
    async with session_of(panel, server, workspace) as (conn, sid):
        turn = asyncio.ensure_future(
            conn.prompt(
                session_id=sid,
                prompt=[acp.text_block("/parallel review,explain go"), link(workspace / "app.py")],
            )
        )
        await aeventually(lambda: len(server.requests) == 2)
        await conn.cancel(session_id=sid)
        response = await turn
    assert response.stop_reason == "cancelled"
    with AuditStore.for_workspace(workspace) as audit:
        closing = {(e.agent, e.status.value) for e in audit.runs()}
    assert closing == {("review", "cancelled"), ("explain", "cancelled")}


async def test_a_resumed_session_takes_prompts_without_replaying_history(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("First answer."), Text("Second answer."))
    async with session_of(Panel(), server, workspace) as (conn, first):
        await conn.prompt(session_id=first, prompt=[acp.text_block("/explain one")])
    panel = Panel()
    async with agent(panel, server, workspace) as conn:
        await conn.resume_session(cwd=str(workspace), session_id=first)
        response = await conn.prompt(session_id=first, prompt=[acp.text_block("/explain two")])
        listed = await conn.list_sessions(cwd=str(workspace))
    assert response.stop_reason == "end_turn"
    assert panel.of_kind("user_message_chunk") == []
    assert panel.text() == "Second answer."
    (info,) = listed.sessions
    assert info.title == "/explain one"


async def test_a_workspace_whose_state_cannot_open_is_an_error_naming_it(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    (workspace / ".agentls").write_text("not a folder", encoding="utf-8")
    async with agent(Panel(), server, workspace) as conn:
        with pytest.raises(acp.RequestError) as caught:
            await conn.new_session(cwd=str(workspace))
        other = workspace.parent / "other"
        other.mkdir()
        assert (await conn.new_session(cwd=str(other))).session_id  # the agent still serves
    assert f"agentls cannot open the workspace {workspace}" in str(caught.value.data)


class PanelWithoutTheFile(Panel):
    """A panel that offers file access but cannot read the attached file."""

    async def read_text_file(self, session_id: str, path: str, **kwargs: Any) -> Any:
        raise acp.RequestError(-32002, "Resource not found", {"path": path})


async def test_a_file_the_editor_cannot_read_is_named_in_the_session(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    panel = PanelWithoutTheFile()
    response = await prompt_once(
        panel,
        server,
        workspace,
        acp.text_block("/explain"),
        link(workspace / "app.py"),
        client_fs=True,
    )
    assert response.stop_reason == "end_turn"
    assert f"Cannot read the attachment {workspace / 'app.py'}: the editor could not read" in (
        panel.text()
    )
    assert server.requests == []


async def test_the_agent_picker_chooses_where_plain_prompts_go(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("Reviewed."))
    async with agent(Panel(), server, workspace) as conn:
        session = await conn.new_session(cwd=str(workspace))
        (picker,) = session.config_options
        assert picker.id == "agent"
        assert "review" in [o.value for o in picker.options]
        changed = await conn.set_config_option(
            config_id="agent", session_id=session.session_id, value="review"
        )
        assert changed.config_options[0].current_value == "review"
        with pytest.raises(acp.RequestError) as caught:
            await conn.set_config_option(
                config_id="agent", session_id=session.session_id, value="nosuch"
            )
        await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("look at it")])
    assert "no agent 'nosuch'" in str(caught.value.data)
    assert server.requests[0]["messages"][0]["content"].startswith(
        "You are a careful senior reviewer"
    )


RUNNER = """\
name: runner
description: Runs a command and reports
instructions: Run the command you are asked to run, then say what it printed.
mode: tools
tools: [run_command]
max_turns: 3
"""


async def run_echo(server: ScriptedOpenAI, workspace: Path, choice: str) -> Panel:
    (workspace / ".agentls" / "agents").mkdir(parents=True)
    (workspace / ".agentls" / "agents" / "runner.yaml").write_text(RUNNER, encoding="utf-8")
    # The workspace's own agent and run_command: only in a folder the user trusts.
    settings = Path(os.environ["HOME"]) / ".config" / "agentls" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"trustedFolders": [str(workspace)]}), encoding="utf-8")
    server.enqueue(ToolCall("run_command", {"command": "echo hi-from-echo"}), Text("Done."))
    panel = Panel(choice=choice)
    await prompt_once(
        panel,
        server,
        workspace,
        acp.text_block("/runner echo something"),
        options=("--run-commands",),
    )
    return panel


def tool_result(server: ScriptedOpenAI) -> str:
    (message,) = [m for m in server.requests[1]["messages"] if m["role"] == "tool"]
    return str(message["content"])


async def test_a_command_runs_after_the_panel_allows_it(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    panel = await run_echo(server, workspace, "run-once")
    (asked,) = panel.permissions
    (card,) = [u for u in panel.of_kind("tool_call") if "run_command" in u.title]
    assert asked.tool_call_id == card.tool_call_id
    assert asked.kind == "execute" and "echo hi-from-echo" in asked.title
    assert "hi-from-echo" in tool_result(server)


async def test_a_denied_command_does_not_run(server: ScriptedOpenAI, workspace: Path) -> None:
    panel = await run_echo(server, workspace, "deny")
    assert len(panel.permissions) == 1
    assert "denied" in tool_result(server)
    assert "hi-from-echo\n" not in tool_result(server)


DELEGATE = "mcp__agentls__delegate"


def orchestrated(child: Reply) -> Any:
    """The orchestrator delegates to explain once, then sums up; the child answers `child`."""

    def respond(body: dict[str, Any]) -> Reply:
        offered = {t["function"]["name"] for t in body.get("tools") or []}
        if any(m["role"] == "tool" for m in body["messages"]):
            return Text("Summary: it adds.")
        if DELEGATE in offered:
            return ToolCall(DELEGATE, {"agent": "explain", "goal": "explain add", "file": "app.py"})
        return child

    return respond


def closing_runs(workspace: Path) -> dict[str, tuple[str, int]]:
    from agentls.core.audit import AuditStore

    with AuditStore.for_workspace(workspace) as audit:
        return {e.agent: (e.status.value, e.depth) for e in audit.runs()}


async def test_a_plain_prompt_goes_to_the_orchestrator_which_delegates(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.responder = orchestrated(Text("It adds two numbers."))
    panel = Panel()
    response = await prompt_once(panel, server, workspace, acp.text_block("what does app.py do?"))
    assert response.stop_reason == "end_turn"
    assert panel.text() == "Summary: it adds."
    (call,) = [u for u in panel.of_kind("tool_call") if DELEGATE in u.title]
    done = [u for u in panel.of_kind("tool_call_update") if u.tool_call_id == call.tool_call_id]
    assert [u.status for u in done if u.status] == ["completed"]
    # What the child does shows in the call while it runs (core/tool_progress.py).
    steps = [u.content[0].content.text for u in done if u.content and not u.status]
    assert any(step.startswith("→ explain: started: explain add") for step in steps), steps
    assert closing_runs(workspace) == {
        "orchestrator": ("finished", 0),
        "explain": ("finished", 1),
    }


async def test_the_turns_token_use_counts_the_runs_it_delegated_to(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    from agentls.core.audit import AuditStore

    server.responder = orchestrated(Text("It adds two numbers.", prompt_tokens=700))
    response = await prompt_once(Panel(), server, workspace, acp.text_block("what does add do?"))
    with AuditStore.for_workspace(workspace) as audit:
        spent = {e.agent: e.usage for e in audit.runs()}
    assert set(spent) == {"orchestrator", "explain"}
    assert spent["explain"].input_tokens == 700  # the child's call, in its own process
    assert response.usage.total_tokens == sum(u.total for u in spent.values())
    assert response.usage.input_tokens == sum(u.input_tokens for u in spent.values())


async def test_cancel_stops_the_orchestrator_and_the_run_it_delegated(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.responder = orchestrated(Hang(60))
    panel = Panel()
    async with session_of(panel, server, workspace) as (conn, sid):
        turn = asyncio.ensure_future(
            conn.prompt(session_id=sid, prompt=[acp.text_block("explain app.py")])
        )
        await aeventually(lambda: len(server.requests) == 2)  # the delegated run asked the model
        await conn.cancel(session_id=sid)
        response = await turn
    assert response.stop_reason == "cancelled"
    runs = closing_runs(workspace)
    assert runs["orchestrator"] == ("cancelled", 0)
    assert runs["explain"][1] == 1 and runs["explain"][0] in {"cancelled", "interrupted"}


async def test_an_edit_a_delegated_run_proposes_is_asked_for_and_written(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    typed = "def add(a: int, b: int) -> int:\n    return a + b\n"

    def respond(body: dict[str, Any]) -> Reply:
        offered = {t["function"]["name"] for t in body.get("tools") or []}
        if any(m["role"] == "tool" for m in body["messages"]):
            return Text("Typed add.")
        if DELEGATE in offered:
            return ToolCall(DELEGATE, {"agent": "refactor", "goal": "add types", "file": "app.py"})
        return Text(f"```python\n{typed}```")  # the refactor agent, in the child agentls

    server.responder = respond
    panel = Panel()
    response = await prompt_once(
        panel, server, workspace, acp.text_block("add type hints to app.py")
    )
    assert response.stop_reason == "end_turn"
    (asked,) = panel.permissions
    assert asked.kind == "edit" and "app.py" in asked.title
    assert (workspace / "app.py").read_bytes() == typed.replace("\n", "\r\n").encode()
