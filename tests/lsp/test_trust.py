"""Workspace trust in the editor: an untrusted workspace's agent definitions, MCP configurations
and run_command are not used, the user is told once what was ignored and how to trust it, and
trust granted later (in the user's settings file) brings them in without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import WAIT, Editor, execute, open_file
from tests.lsp.user_home import (
    client_with_home,
    initial_user_settings,
    new_home,
    user_settings_fixture,
)
from tests.rig.scripted_openai import ScriptedOpenAI, Text

# The user's own settings file (~/.config/agentls/settings.json) is written by the tests.
HOME = new_home()
client = client_with_home(HOME)
user_settings = user_settings_fixture(HOME)
__all__ = ["initial_user_settings"]

CHECKER = "name: checker\ndescription: Checks things\ninstructions: Check.\n"
RUNNER = """\
name: runner
description: Runs things
instructions: Run.
mode: tools
tools: [read_file, run_command]
"""


@pytest.fixture
def workspace(workspace: Path) -> Path:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "checker.yaml").write_text(CHECKER)
    (workspace / ".mcp.json").write_text('{"mcpServers": {"evil": {"command": "sh"}}}')
    return workspace


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """No trust from settings: an editor configured like most users' (no trust setting)."""
    return {k: v for k, v in settings.items() if k != "trustWorkspace"}


async def agent_names(client: LanguageClient) -> list[str]:
    return [a["name"] for a in await execute(client, "agentls.listAgents")]


def warnings(client: LanguageClient) -> list[str]:
    return [m.message for m in client.messages if m.type == types.MessageType.Warning]


def trust_notice(client: LanguageClient) -> str | None:
    return next((m for m in warnings(client) if "not trusted" in m), None)


async def change_settings(client: LanguageClient, editor: Editor, section: dict[str, Any]) -> None:
    """The editor's settings change; the server pulls them (workspace/configuration)."""
    client.set_configuration(section, section="agentls")
    seen = editor.configuration_requests
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await editor.wait_until(lambda: editor.configuration_requests > seen)


async def change_user_settings(
    client: LanguageClient,
    editor: Editor,
    write: Callable[[dict[str, Any]], None],
    settings: dict[str, Any],
) -> None:
    """The user edits ~/.config/agentls/settings.json; any settings change makes the server read it."""
    write(settings)
    await change_settings(client, editor, {})


async def until_listed(client: LanguageClient, name: str) -> list[str]:
    """The agent names once `name` is among them (settings apply just after the pull answer)."""

    async def poll() -> list[str]:
        while name not in (names := await agent_names(client)):
            await asyncio.sleep(0.05)
        return names

    return await asyncio.wait_for(poll(), WAIT)


@pytest.fixture
def outside_agents(workspace: Path) -> Path:
    """A folder of the user's own agents, outside the workspace: trusted whatever the workspace."""
    folder = workspace.parent / "user-agents"
    folder.mkdir()
    (folder / "marker.yaml").write_text(CHECKER.replace("checker", "marker"))
    return folder


async def test_an_untrusted_workspace_agent_is_not_listed(client: LanguageClient) -> None:
    names = await agent_names(client)
    assert "checker" not in names
    assert "review" in names, "built-in agents are still there"


async def test_the_user_is_told_what_was_ignored_and_how_to_trust(
    client: LanguageClient, editor: Editor
) -> None:
    notice = await editor.wait_until(lambda: trust_notice(client))
    assert "1 agent definition in .agentls/agents/" in notice
    assert ".mcp.json" in notice
    assert "agentls.trustWorkspace" in notice and "Manage Workspace Trust" in notice


async def test_the_user_is_told_only_once(
    client: LanguageClient,
    editor: Editor,
    outside_agents: Path,
    user_settings: Callable[[dict[str, Any]], None],
) -> None:
    await editor.wait_until(lambda: trust_notice(client))
    await change_user_settings(
        client, editor, user_settings, {"agentFolders": [str(outside_agents)]}
    )
    await until_listed(client, "marker")
    assert len([m for m in warnings(client) if "not trusted" in m]) == 1


async def test_trust_granted_in_the_users_settings_file_brings_the_workspace_agent_in(
    client: LanguageClient,
    editor: Editor,
    workspace: Path,
    user_settings: Callable[[dict[str, Any]], None],
) -> None:
    assert "checker" not in await agent_names(client)

    await change_user_settings(client, editor, user_settings, {"trustedFolders": [str(workspace)]})

    await until_listed(client, "checker")
    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}
    assert agents["checker"]["source"] == "workspace"


async def test_run_command_is_never_offered_in_an_untrusted_workspace(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    outside_agents: Path,
    user_settings: Callable[[dict[str, Any]], None],
) -> None:
    # The user's own agent (not from the workspace) lists run_command, enabled in settings.
    (outside_agents / "runner.yaml").write_text(RUNNER)
    await change_user_settings(
        client,
        editor,
        user_settings,
        {"agentFolders": [str(outside_agents)], "runCommand": {"enabled": True}},
    )
    await until_listed(client, "runner")
    model.enqueue(Text("nothing run"))
    uri = open_file(client, workspace / "src" / "app.py")

    result = await execute(
        client, "agentls.delegate", {"agent": "runner", "goal": "Run", "uri": uri}
    )

    assert result["status"] == "finished"
    offered = {t["function"]["name"] for t in model.requests[0]["tools"]}
    assert offered == {"read_file"}


class TestAClientWithItsOwnTrust:
    """VS Code sends `workspaceTrusted` from its workspace trust in initializationOptions."""

    @pytest.fixture
    def initialization_options(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"settings": settings, "workspaceTrusted": True}

    async def test_its_trust_is_used(self, client: LanguageClient) -> None:
        assert "checker" in await agent_names(client)


class TestTrustedFolders:
    @pytest.fixture
    def settings(self, settings: dict[str, Any], workspace: Path) -> dict[str, Any]:
        return {**settings, "trustedFolders": [str(workspace.parent)]}

    async def test_a_workspace_inside_a_trusted_folder_is_trusted(
        self, client: LanguageClient
    ) -> None:
        assert "checker" in await agent_names(client)
        assert trust_notice(client) is None


class TestAnExplicitlyUntrustedWorkspace:
    @pytest.fixture
    def initialization_options(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"settings": settings, "workspaceTrusted": False}

    async def test_definitions_in_agent_folders_inside_it_are_ignored_too(
        self,
        client: LanguageClient,
        workspace: Path,
        editor: Editor,
        outside_agents: Path,
        user_settings: Callable[[dict[str, Any]], None],
    ) -> None:
        (workspace / "agents").mkdir()
        (workspace / "agents" / "sneaky.yaml").write_text(CHECKER.replace("checker", "sneaky"))

        await change_user_settings(
            client, editor, user_settings, {"agentFolders": ["agents", str(outside_agents)]}
        )

        assert "sneaky" not in await until_listed(client, "marker")


class TestARelativeTrustedFolder:
    @pytest.fixture
    def settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {**settings, "trustedFolders": ["code/mine"]}

    async def test_is_reported_and_trusts_nothing(
        self, client: LanguageClient, editor: Editor
    ) -> None:
        problem = await editor.wait_until(
            lambda: next((m for m in warnings(client) if "trustedFolders" in m), None)
        )
        assert "'code/mine' is not an absolute path" in problem
        assert "checker" not in await agent_names(client)
