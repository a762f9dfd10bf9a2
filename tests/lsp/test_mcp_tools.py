"""An agent that calls an MCP tool, seen from the editor: the call shows in the run's progress, as
`agentls/event` tool events and in the log like any other tool (server-everything over stdio,
configured by the editor setting `agentls.mcpServers`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

REPO = Path(__file__).resolve().parents[2]
EVERYTHING = {
    "command": "node",
    "args": [
        str(REPO / "tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
    ],
}
ADDER = """\
name: adder
description: Adds numbers with an MCP tool
instructions: Add the numbers with the tool.
mode: tools
mcp:
  everything: [get-sum]
"""
MCP_SETTINGS = {"mcpServers": {"everything": EVERYTHING}}


@pytest.fixture
def workspace(workspace: Path) -> Path:
    agents = workspace / ".agentls" / "agents"
    agents.mkdir(parents=True)
    (agents / "adder.yaml").write_text(ADDER, encoding="utf-8")
    return workspace


async def delegate_sum(client: LanguageClient, workspace: Path, model: ScriptedOpenAI) -> Any:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(ToolCall("mcp__everything__get-sum", {"a": 2, "b": 40}), Text("It is 42."))
    return await execute(client, "agentls.delegate", {"agent": "adder", "goal": "2+40", "uri": uri})


@pytest.mark.parametrize("settings", [MCP_SETTINGS], indirect=True)
async def test_the_progress_of_a_run_names_the_mcp_tool_it_calls(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    result = await delegate_sum(client, workspace, model)

    assert result["status"] == "finished", result.get("error")
    assert result["text"] == "It is 42."
    (reports,) = client.progress_reports.values()
    messages = [r.message for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert any(
        m.startswith("turn 1 · ") and m.endswith("mcp__everything__get-sum(a=2, b=40)")
        for m in messages
    ), messages


@pytest.mark.parametrize("settings", [MCP_SETTINGS], indirect=True)
async def test_an_mcp_tool_call_is_an_event_and_a_log_line(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    settings: dict[str, Any],
) -> None:
    result = await delegate_sum(client, workspace, model)

    events = await editor.wait_until(
        lambda: [e for e in editor.run_events(result["runId"]) if e["kind"] == "tool_call"]
    )
    assert [(e["data"]["tool"], e["data"]["isError"]) for e in events] == [
        ("mcp__everything__get-sum", False)
    ]
    assert events[0]["data"]["arguments"] == "a=2, b=40"
    # The model read the server's answer.
    tool_messages = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert "\nThe sum of 2 and 40 is 42.\n" in tool_messages[0]["content"]
    logged = await editor.wait_until(
        lambda: [
            m.message
            for m in client.log_messages
            if "tool_call mcp__everything__get-sum(a=2, b=40)" in m.message
        ]
    )
    assert logged[0].startswith("[agentls] adder tool_call")


@pytest.mark.parametrize(
    "settings",
    [{"mcpServers": {"everything": {"command": "agentls-no-such-server"}}}],
    indirect=True,
)
async def test_a_server_that_does_not_start_fails_the_run_with_its_command(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    result = await execute(
        client, "agentls.delegate", {"agent": "adder", "goal": "2+40", "uri": uri}
    )

    assert result["status"] == "failed"
    assert result["error"].startswith(
        "MCP server 'everything' (agentls-no-such-server, from editor"
    )
    assert model.requests == []


FAULTY = {"command": sys.executable, "args": [str(REPO / "tests/rig/faulty_mcp_server.py")]}
PID_AGENT = """\
name: pid
description: Asks an MCP server for its process id
instructions: Call the tool.
mode: tools
mcp:
  faulty: [pid]
"""


@pytest.mark.parametrize("settings", [{"mcpServers": {"faulty": FAULTY}}], indirect=True)
async def test_shutdown_ends_the_mcp_server_processes(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    (workspace / ".agentls" / "agents" / "pid.yaml").write_text(PID_AGENT, encoding="utf-8")
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(ToolCall("mcp__faulty__pid", {}), Text("done"))
    result = await execute(client, "agentls.delegate", {"agent": "pid", "goal": "pid", "uri": uri})
    assert result["status"] == "finished", result.get("error")
    framed = next(m for m in model.requests[1]["messages"] if m["role"] == "tool")["content"]
    pid = int(framed.split("\n")[2])
    os.kill(pid, 0)  # running while the editor is open

    # Before `exit`: the language server still runs, so only its shutdown can have ended the child.
    await client.protocol.send_request_async(types.SHUTDOWN, None)

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    client.exit(None)
    client.capabilities = None  # shut down already: the fixture must not send shutdown again


@pytest.mark.parametrize(
    "settings",
    [{"mcpServers": {"everything": {"command": "agentls-no-such-server"}}}],
    indirect=True,
)
async def test_a_changed_mcp_servers_setting_applies_to_the_next_run(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    settings: dict[str, Any],
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    first = await execute(
        client, "agentls.delegate", {"agent": "adder", "goal": "2+40", "uri": uri}
    )
    assert first["status"] == "failed"

    client.set_configuration(MCP_SETTINGS, section="agentls")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await editor.wait_until(lambda: editor.configuration_requests >= 2)

    result = await delegate_sum(client, workspace, model)
    assert result["status"] == "finished", result.get("error")
    assert result["text"] == "It is 42."
