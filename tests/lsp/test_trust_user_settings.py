"""The user's settings file, ~/.config/agentls/settings.json, in the language server: the user's
own configuration, a layer below the editor's, which may trust folders; its problems are told
naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, open_file
from tests.lsp.test_trust import CHECKER, agent_names, change_settings, trust_notice, until_listed
from tests.lsp.user_home import (
    client_with_home,
    initial_user_settings,
    new_home,
    settings_file,
    user_settings_fixture,
)
from tests.rig.scripted_openai import ScriptedOpenAI, Text

HOME = new_home()
client = client_with_home(HOME)
user_settings = user_settings_fixture(HOME)
__all__ = ["initial_user_settings"]


@pytest.fixture
def workspace(workspace: Path) -> Path:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "checker.yaml").write_text(CHECKER)
    return workspace


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The editor's configuration says nothing about trust."""
    return {k: v for k, v in settings.items() if k != "trustWorkspace"}


def warnings(client: LanguageClient) -> list[str]:
    return [m.message for m in client.messages if m.type == types.MessageType.Warning]


class TestAFolderTrustedInTheFile:
    @pytest.fixture
    def initial_user_settings(self, workspace: Path) -> dict[str, Any]:
        return {"trustedFolders": [str(workspace.parent)]}

    async def test_its_agents_load_and_nothing_is_said(self, client: LanguageClient) -> None:
        assert "checker" in await until_listed(client, "checker")
        assert trust_notice(client) is None


class TestTheFileUnderTheEditorsSettings:
    @pytest.fixture
    def initial_user_settings(self) -> dict[str, Any]:
        return {"model": "the-files-model", "maxOutputTokens": 200}

    async def test_fills_what_the_editor_does_not_set(
        self, client: LanguageClient, workspace: Path, model: ScriptedOpenAI
    ) -> None:
        model.enqueue(Text("fine"))
        uri = open_file(client, workspace / "src" / "app.py")

        result = await execute(client, "agentls.delegate", {"agent": "explain", "uri": uri})

        assert result["status"] == "finished"
        (request,) = model.requests
        assert request["model"] == "scripted-model"  # the editor's initializationOptions win
        assert request["max_tokens"] == 200


class TestABrokenFile:
    @pytest.fixture
    def initial_user_settings(self, workspace: Path) -> dict[str, Any]:
        return {
            "budget": {"total": -5, "perRun": 900},
            "trustedFolder": [str(workspace)],
            "apiKey": "sk-from-a-file",
        }

    async def test_each_problem_names_the_file_and_key(
        self, client: LanguageClient, editor: Editor
    ) -> None:
        path = str(settings_file(HOME))

        def told() -> list[str]:
            return [m for m in warnings(client) if path in m]

        found = await editor.wait_until(lambda: len(told()) >= 3 and told())
        assert any("budget.total" in m and "greater than or equal to 0" in m for m in found)
        assert any("unknown setting trustedFolder" in m for m in found)
        assert any("apiKey" in m and "OPENAI_API_KEY" in m for m in found)
        assert "sk-from-a-file" not in "".join(found)

    async def test_its_problems_are_told_once(self, client: LanguageClient, editor: Editor) -> None:
        path = str(settings_file(HOME))
        await editor.wait_until(lambda: len([m for m in warnings(client) if path in m]) >= 3)
        await change_settings(client, editor, {"maxOutputTokens": 100})
        await agent_names(client)
        assert len([m for m in warnings(client) if path in m]) == 3


class TestAClientThatScopesItsOwnSettings:
    """VS Code: it sends a workspace's values only where the user allowed them, and grants its
    own workspace trust through the settings it answers with."""

    @pytest.fixture
    def initialization_options(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"settings": settings, "workspaceTrusted": False, "scopedConfiguration": True}

    async def test_trust_granted_later_brings_the_workspace_agent_in(
        self, client: LanguageClient, editor: Editor
    ) -> None:
        assert "checker" not in await agent_names(client)

        await change_settings(client, editor, {"trustWorkspace": True})

        await until_listed(client, "checker")


class TestAWorkspaceAgentLimitOverTheFilesTotal:
    """The editor's answer (the workspace's, untrusted) holds only `budget.perAgent`."""

    @pytest.fixture
    def initial_user_settings(self) -> dict[str, Any]:
        return {"budget": {"total": 5000}}

    @pytest.fixture
    def editor_settings(self) -> dict[str, Any]:
        return {"budget": {"perAgent": {"explain": 700}}}

    async def test_both_limits_hold_and_nothing_is_named_as_ignored(
        self, client: LanguageClient
    ) -> None:
        from tests.lsp.test_trust_workspace_settings import until_agent_limit

        await until_agent_limit(client, "explain", 700)

        assert (await execute(client, "agentls.budget"))["limit"] == 5000
        assert not [m for m in warnings(client) if "budget" in m]
