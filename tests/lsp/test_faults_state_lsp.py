"""Broken workspace state in the editor: the request that needs it fails with the file and what to
do, the user sees it once as an error message, other requests keep working, and a repair takes
effect without restarting the server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient
from tests.lsp.harness import WAIT, Editor, execute

from agentls.core.state_repair import repair


@pytest.fixture
def workspace(workspace: Path) -> Path:
    state = workspace / ".agentls"
    state.mkdir()
    (state / "audit.db").write_bytes(os.urandom(4096))
    return workspace


async def test_broken_audit_db_fails_the_request_naming_the_file(
    client: LanguageClient, workspace: Path
) -> None:
    with pytest.raises(JsonRpcException) as info:
        await execute(client, "agentls.audit", {})
    assert info.value.code == types.LSPErrorCodes.RequestFailed.value
    assert str(workspace / ".agentls" / "audit.db") in info.value.message
    assert "agentls doctor --repair" in info.value.message


async def test_broken_state_is_shown_to_the_user_once(
    client: LanguageClient, workspace: Path, editor: Editor
) -> None:
    for _ in range(2):
        with pytest.raises(JsonRpcException):
            await execute(client, "agentls.budget", {"action": "get"})

    def errors() -> list[str]:
        return [
            m.message
            for m in client.messages
            if m.type == types.MessageType.Error and "audit.db" in m.message
        ]

    await editor.wait_until(errors, WAIT)
    assert len(errors()) == 1
    assert "agentls doctor --repair" in errors()[0]


async def test_requests_that_need_no_state_still_work(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException):
        await execute(client, "agentls.budget", {"action": "get"})
    assert await execute(client, "agentls.cancel", {}) == {"cancelled": []}
    # Listing agents (and so code actions) reads definitions only, never the broken databases.
    assert "review" in {a["name"] for a in await execute(client, "agentls.listAgents")}


async def test_repair_takes_effect_without_a_restart(
    client: LanguageClient, workspace: Path
) -> None:
    with pytest.raises(JsonRpcException):
        await execute(client, "agentls.budget", {"action": "get"})

    repair(workspace)

    snapshot = await execute(client, "agentls.budget", {"action": "get"})
    assert snapshot["used"] == 0
