"""Workspace folders as the editor opens them. Each folder is its own agentls workspace: its own
`.agentls/` state (budget ledger, audit trail), its own agents and budget; a file is served by the
folder that holds it. Without a folder nothing can run, and runs say so. `untitled:` buffers get
no code actions (there is no folder to keep their state in and no file to edit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import (
    APP,
    SERVER_COMMAND,
    SERVER_ENV,
    Editor,
    execute,
    open_file,
    open_session,
    uri_of,
)
from tests.rig.scripted_openai import ScriptedOpenAI, Text

ONLY_IN_B = """\
name: b-only
description: An agent defined in folder b only
instructions: Answer briefly.
mode: answer
code_action: "Only in b"
"""


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "src").mkdir(parents=True)
        (root / "src" / "app.py").write_text(APP)
    (b / ".agentls" / "agents").mkdir(parents=True)
    (b / ".agentls" / "agents" / "b-only.yaml").write_text(ONLY_IN_B)
    return a.resolve(), b.resolve()


def settings_of(model: ScriptedOpenAI) -> dict[str, Any]:
    # Trusted, so each folder's own definitions load (docs/security.md#workspace-trust).
    return {
        "baseUrl": model.url,
        "model": "scripted-model",
        "apiKey": "sk-test",
        "trustWorkspace": True,
    }


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def two_folders(
    lsp_client: LanguageClient, folders: tuple[Path, Path], model: ScriptedOpenAI, editor: Editor
) -> AsyncIterator[None]:
    await open_session(lsp_client, editor, list(folders), {"settings": settings_of(model)})
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def no_folder(
    lsp_client: LanguageClient, model: ScriptedOpenAI, editor: Editor
) -> AsyncIterator[None]:
    await open_session(lsp_client, editor, [], {"settings": settings_of(model)})
    yield
    await lsp_client.shutdown_session()


async def action_agents(client: LanguageClient, uri: str) -> list[str]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=2, character=0)
            ),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    return [a.command.arguments[0]["agent"] for a in result or [] if a.command]


async def test_a_file_in_the_second_folder_runs_in_that_folder(
    two_folders: LanguageClient, folders: tuple[Path, Path], model: ScriptedOpenAI
) -> None:
    a, b = folders
    uri = open_file(two_folders, b / "src" / "app.py")
    model.enqueue(Text("fine"))

    result = await execute(two_folders, "agentls.delegate", {"agent": "explain", "uri": uri})

    assert result["status"] == "finished"
    assert (b / ".agentls" / "audit.db").is_file()
    assert not (a / ".agentls").exists()


async def test_each_folder_offers_its_own_agents(
    two_folders: LanguageClient, folders: tuple[Path, Path]
) -> None:
    a, b = folders

    in_a = await action_agents(two_folders, open_file(two_folders, a / "src" / "app.py"))
    in_b = await action_agents(two_folders, open_file(two_folders, b / "src" / "app.py"))

    assert "b-only" in in_b
    assert "b-only" not in in_a
    assert "explain" in in_a


async def test_each_folder_keeps_its_own_budget(
    two_folders: LanguageClient, folders: tuple[Path, Path], model: ScriptedOpenAI
) -> None:
    _, b = folders
    model.enqueue(Text("fine"))
    await execute(
        two_folders,
        "agentls.delegate",
        {"agent": "explain", "uri": open_file(two_folders, b / "src" / "app.py")},
    )

    # agentls.budget reads the first folder's ledger: b's run is not charged to a.
    assert (await execute(two_folders, "agentls.budget"))["used"] == 0


async def test_a_file_outside_every_folder_is_refused_naming_the_folders(
    two_folders: LanguageClient, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("x = 1\n")

    with pytest.raises(JsonRpcInvalidParams, match="outside the workspace folders") as err:
        await execute(two_folders, "agentls.delegate", {"agent": "explain", "uri": uri_of(outside)})
    assert str(folders[1]) in str(err.value)


async def test_without_a_folder_a_run_says_to_open_one(
    no_folder: LanguageClient, tmp_path: Path
) -> None:
    loose = tmp_path / "loose.py"
    loose.write_text(APP)
    uri = open_file(no_folder, loose)

    with pytest.raises(JsonRpcInvalidParams, match="no workspace folder is open; open a folder"):
        await execute(no_folder, "agentls.delegate", {"agent": "explain", "uri": uri})
    with pytest.raises(JsonRpcInvalidParams, match="no workspace folder is open"):
        await execute(no_folder, "agentls.budget")
    assert await action_agents(no_folder, uri) == []
    # The agents are still listed (built-ins), though none can run without a folder.
    assert "explain" in [a["name"] for a in await execute(no_folder, "agentls.listAgents")]


async def test_an_untitled_buffer_gets_no_code_actions(two_folders: LanguageClient) -> None:
    uri = "untitled:Untitled-1"
    two_folders.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=APP)
        )
    )

    assert await action_agents(two_folders, uri) == []
    with pytest.raises(JsonRpcInvalidParams, match="is not a file URI; save the file"):
        await execute(two_folders, "agentls.delegate", {"agent": "explain", "uri": uri})


async def test_a_folder_added_later_is_served_from_then_on(
    no_folder: LanguageClient, folders: tuple[Path, Path], model: ScriptedOpenAI
) -> None:
    a, _ = folders
    uri = open_file(no_folder, a / "src" / "app.py")
    with pytest.raises(JsonRpcInvalidParams, match="no workspace folder is open"):
        await execute(no_folder, "agentls.budget")

    # "Add Folder to Workspace…" in the editor.
    no_folder.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=uri_of(a), name=a.name)], removed=[]
            )
        )
    )
    model.enqueue(Text("fine"))

    assert (await execute(no_folder, "agentls.budget"))["used"] == 0
    result = await execute(no_folder, "agentls.delegate", {"agent": "explain", "uri": uri})
    assert result["status"] == "finished"
    assert (a / ".agentls" / "audit.db").is_file()
