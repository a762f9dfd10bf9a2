"""An audit trail that refuses writes, seen from the editor: the run is refused before any model
call, the request fails with the sentence that says what to do, the user is shown it, and the
run's work-done progress ends with it instead of spinning forever."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import SERVER_ENV, Editor, execute, open_session, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI

READ_ONLY_AUDIT_SERVER = [
    sys.executable,
    str(Path(__file__).with_name("read_only_audit_server.py")),
]


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=READ_ONLY_AUDIT_SERVER, server_env=SERVER_ENV)
)
async def client(
    lsp_client: LanguageClient,
    workspace: Path,
    initialization_options: dict[str, Any],
    capabilities: types.ClientCapabilities,
    editor: Editor,
) -> AsyncIterator[None]:
    await open_session(lsp_client, editor, [workspace], initialization_options, capabilities)
    yield
    await lsp_client.shutdown_session()


async def refused_delegate(client: LanguageClient, workspace: Path) -> JsonRpcException:
    uri = uri_of(workspace / "src" / "app.py")
    with pytest.raises(JsonRpcException) as info:
        await execute(client, "agentls.delegate", {"agent": "explain", "goal": "why", "uri": uri})
    return info.value


async def test_a_run_the_audit_refuses_fails_the_request_saying_what_to_do(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    error = await refused_delegate(client, workspace)

    assert error.code == types.LSPErrorCodes.RequestFailed.value
    assert str(workspace / ".agentls" / "audit.db") in error.message
    assert "read-only" in error.message and "cannot audit" in error.message
    assert model.requests == []  # nothing ran unaudited


async def test_a_run_the_audit_refuses_ends_its_progress_with_the_error(
    client: LanguageClient, workspace: Path
) -> None:
    await refused_delegate(client, workspace)

    (reports,) = client.progress_reports.values()
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    end = reports[-1]
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert end.message is not None
    assert "read-only" in end.message and "cannot audit" in end.message


async def test_a_run_the_audit_refuses_is_shown_to_the_user(
    client: LanguageClient, workspace: Path
) -> None:
    await refused_delegate(client, workspace)

    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any("read-only" in m and "cannot audit" in m for m in errors)
