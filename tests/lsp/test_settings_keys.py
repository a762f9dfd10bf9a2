"""An invalid nested setting costs only that key, end to end: the editor's warning names its exact
path and the budget's other limits stay in force (a budget never silently becomes no budget)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import WAIT, execute
from tests.rig.eventually import aeventually


async def limit_becomes(client: LanguageClient, limit: int) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while (snapshot := await execute(client, "agentls.budget"))["limit"] != limit:
            await asyncio.sleep(0.02)
        return snapshot

    return await asyncio.wait_for(poll(), WAIT)


@pytest.mark.parametrize(
    "editor_settings", [{"budget": {"total": 1000, "perRun": 0, "perAgent": {"review": 50}}}]
)
async def test_one_invalid_budget_key_keeps_the_other_limits(
    client: LanguageClient, editor_settings: dict[str, Any]
) -> None:
    snapshot = await limit_becomes(client, 1000)

    assert snapshot["agents"]["review"]["limit"] == 50
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert any("setting agentls.budget.perRun:" in w for w in warnings), warnings
    assert not any("setting agentls.budget:" in w for w in warnings), warnings


@pytest.mark.parametrize("settings", [{"budget": {"total": 1000}}], indirect=True)
@pytest.mark.parametrize("editor_settings", [{"budget": {"total": -5}}])
async def test_an_invalid_limit_from_the_editor_keeps_the_limit_in_force(
    client: LanguageClient, settings: dict[str, Any], editor_settings: dict[str, Any]
) -> None:
    # The editor's answer to workspace/configuration arrives after initialization.
    await aeventually(
        lambda: any("setting agentls.budget.total:" in m.message for m in client.messages),
        "the warning about agentls.budget.total",
    )

    assert (await execute(client, "agentls.budget"))["limit"] == 1000


EXTRA_AGENT = """\
name: extra
description: An agent from an extra folder
instructions: Answer briefly.
"""


async def test_changing_the_agent_folders_reloads_the_agents(
    client: LanguageClient, workspace: Path
) -> None:
    extra = workspace / "team-agents"
    extra.mkdir()
    (extra / "extra.yaml").write_text(EXTRA_AGENT)
    assert "extra" not in [a["name"] for a in await execute(client, "agentls.listAgents")]

    client.set_configuration({"agentFolders": ["team-agents"]}, section="agentls")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))

    async def listed() -> None:
        while "extra" not in [a["name"] for a in await execute(client, "agentls.listAgents")]:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(listed(), WAIT)
