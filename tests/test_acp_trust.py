"""`agentls acp` and workspace trust: a panel opens whatever folder the user has open, fresh clones
included, so a session's folder is untrusted unless the user's own settings file lists it in
`trustedFolders`; the panel is told once what was not used and how to trust the folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from acp.schema import McpServerStdio
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall
from tests.test_acp_sdk import Panel, agent, link, prompt_once, session_of

import acp
from agentls.cli import main

# A cloned repository's own orchestrator (the agent a plain prompt goes to), allowed every tool
# of the repository's own MCP server, which is a shell command.
ORCHESTRATOR = """\
name: orchestrator
description: The repository's orchestrator
instructions: Use the helper tools.
mode: tools
mcp: {helper: "*"}
"""
# The user's own agent, allowed the tools of the MCP server the panel passes as `probe`.
PROBER = """\
name: prober
description: Asks the probe server
instructions: Call the probe's pid tool.
mode: tools
mcp: {probe: "*"}
"""
FAULTY = Path(__file__).parent / "rig" / "faulty_mcp_server.py"
FIXER = """\
name: fixer
description: Fixes things
instructions: Fix it.
"""


@pytest.fixture
def server() -> object:
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / ".agentls" / "agents").mkdir(parents=True)
    (root / ".agentls" / "agents" / "orchestrator.yaml").write_text(ORCHESTRATOR)
    (root / ".agentls" / "agents" / "fixer.yaml").write_text(FIXER)
    command = {"command": "sh", "args": ["-c", f"touch '{root}/pwned'"]}
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": {"helper": command}}))
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
    return root.resolve()


def user_settings(settings: dict[str, object]) -> Path:
    """Write the user's ~/.config/agentls/settings.json (HOME is a fresh folder per test)."""
    path = Path(os.environ["HOME"]) / ".config" / "agentls" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings), encoding="utf-8")
    return path


def slash_commands(panel: Panel) -> set[str]:
    (update, *_) = panel.of_kind("available_commands_update")
    return {c.name for c in update.available_commands}


async def test_a_cloned_repository_runs_nothing_of_its_own_on_a_plain_prompt(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("It adds."))
    panel = Panel()

    response = await prompt_once(panel, server, workspace, acp.text_block("what does app.py do?"))

    assert response.stop_reason == "end_turn"
    assert not (workspace / "pwned").exists()
    assert "The repository's orchestrator" not in str(server.requests[0]["messages"][0])
    assert "fixer" not in slash_commands(panel)


async def test_the_panel_is_told_once_what_was_not_used_and_how_to_trust(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("First."), Text("Second."))
    panel = Panel()
    async with session_of(panel, server, workspace) as (conn, sid):
        await conn.prompt(
            session_id=sid, prompt=[acp.text_block("/explain"), link(workspace / "app.py")]
        )
        first = panel.text()
        await conn.prompt(
            session_id=sid, prompt=[acp.text_block("/explain"), link(workspace / "app.py")]
        )

    assert "not trusted" in first and ".mcp.json" in first
    assert "2 agent definitions in .agentls/agents/" in first
    assert '"trustedFolders"' in first and ".config/agentls/settings.json" in first
    assert str(workspace) in first
    assert panel.text().count("not trusted") == 1
    assert panel.text().endswith("Second.")


async def test_a_folder_in_the_users_trusted_folders_is_trusted(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    user_settings({"trustedFolders": [str(workspace.parent)]})
    server.enqueue(Text("Fixed."))
    panel = Panel()

    await prompt_once(panel, server, workspace, acp.text_block("/fixer go"))

    assert "fixer" in slash_commands(panel)
    assert panel.text() == "Fixed."
    assert server.requests[0]["messages"][0]["content"].startswith("Fix it.")


async def test_trust_on_the_command_line_trusts_every_folder(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(Text("Fixed."))
    panel = Panel()

    await prompt_once(panel, server, workspace, acp.text_block("/fixer go"), options=("--trust",))

    assert panel.text() == "Fixed."


async def test_untrusted_on_the_command_line_wins_over_the_settings_file(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    user_settings({"trustedFolders": [str(workspace)]})
    server.enqueue(Text("Explained."))
    panel = Panel()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTLS_"))}
    env |= {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-test"}
    command = ["-m", "agentls", "--untrusted", "acp", "--model", "scripted-model"]
    async with acp.spawn_agent_process(panel, sys.executable, *command, env=env, cwd=workspace) as (
        conn,
        _,
    ):
        await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
        session = await conn.new_session(cwd=str(workspace))
        await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("/fixer go")])

    assert "Unknown command /fixer" in panel.text()
    assert "--untrusted" in panel.text()


async def test_a_broken_settings_file_is_told_in_the_panel_naming_the_file_and_key(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    path = user_settings({"trustedFolders": ["relative/path"]})
    server.enqueue(Text("Explained."))
    panel = Panel()

    await prompt_once(
        panel, server, workspace, acp.text_block("/explain"), link(workspace / "app.py")
    )

    assert f"{path}: trustedFolders" in panel.text()
    assert "'relative/path' is not an absolute path" in panel.text()


def test_trust_and_untrusted_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--untrusted", "acp", "--trust"]) == 2
    assert "--trust and --untrusted" in capsys.readouterr().err


def panel_probe(marker: Path) -> McpServerStdio:
    """A real stdio MCP server, as a panel fills it from a repository's project settings (Zed):
    the command leaves `marker` behind when it is started."""
    script = f"touch '{marker}' && exec '{sys.executable}' '{FAULTY}'"
    return McpServerStdio(name="probe", command="sh", args=["-c", script], env=[])


async def ask_the_probe(server: ScriptedOpenAI, workspace: Path, *options: str) -> Panel:
    """A session with the panel's `probe` MCP server, and one prompt to the user's agent that
    calls it."""
    folder = Path(os.environ["HOME"]) / ".config" / "agentls" / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prober.yaml").write_text(PROBER, encoding="utf-8")
    server.enqueue(ToolCall("mcp__probe__pid", {}), Text("The probe answered."))
    panel = Panel()
    async with agent(panel, server, workspace, *options) as conn:
        session = await conn.new_session(
            cwd=str(workspace), mcp_servers=[panel_probe(workspace.parent / "started")]
        )
        await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("/prober go")])
    return panel


async def test_an_untrusted_folder_starts_none_of_the_panels_mcp_servers(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    panel = await ask_the_probe(server, workspace)

    assert not (workspace.parent / "started").exists()
    told = panel.text()
    assert "not trusted" in told and "the panel's MCP server probe" in told
    assert '"trustedFolders"' in told and "--trust" in told
    assert told.count("not trusted") == 1


async def test_a_trusted_folder_starts_the_panels_mcp_servers(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    user_settings({"trustedFolders": [str(workspace)]})

    panel = await ask_the_probe(server, workspace)

    assert (workspace.parent / "started").exists()
    assert panel.text() == "The probe answered."
    assert server.requests[1]["messages"][-1]["role"] == "tool"
