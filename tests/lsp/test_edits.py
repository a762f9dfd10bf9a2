"""Agent edits go through workspace/applyEdit, labelled with the agent; a refusal is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import (
    Editor,
    default_capabilities,
    execute,
    lsp_range,
    open_file,
    uri_of,
)
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

DOCUMENTED_MEAN = '''\
```python
def mean(values):
    """The arithmetic mean of values (which must not be empty)."""
    return sum(values) / len(values)
```'''


def only_text_edit(
    request: types.ApplyWorkspaceEditParams,
) -> tuple[str, int | None, types.TextEdit]:
    changes = request.edit.document_changes
    assert changes is not None and len(changes) == 1
    (change,) = changes
    assert isinstance(change, types.TextDocumentEdit)
    (edit,) = change.edits
    assert isinstance(edit, types.TextEdit)
    return change.text_document.uri, change.text_document.version, edit


async def test_an_edit_is_applied_through_the_editor_labelled_with_the_agent(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text(DOCUMENTED_MEAN))

    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "document", "uri": uri, "range": lsp_range((7, 0), (9, 0))},
    )

    assert result["status"] == "finished"
    (request,) = editor.edit_requests
    assert request.label == "agentls: document"
    edit_uri, version, edit = only_text_edit(request)
    assert edit_uri == uri
    assert version == 1, "the edit is pinned to the version the run started from"
    # Whole lines down to the end of the file: the final newline is part of the selection.
    assert edit.range == types.Range(
        start=types.Position(line=7, character=0), end=types.Position(line=9, character=0)
    )
    assert edit.new_text.startswith('def mean(values):\n    """The arithmetic mean')
    assert edit.new_text.endswith("len(values)\n")
    assert (workspace / "src" / "app.py").read_text().count('"""') == 0, "the server never writes"
    (returned,) = result["edits"]
    assert returned["uri"] == uri and returned["agent"] == "document"
    kinds = editor.kinds(result["runId"])
    assert kinds.index("edit_proposed") < kinds.index("edit_applied") < kinds.index("finished")


async def test_an_edit_the_editor_refuses_is_recorded_as_rejected(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    editor.accept_edits = False
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text(DOCUMENTED_MEAN))

    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "document", "uri": uri, "range": lsp_range((7, 0), (9, 0))},
    )

    assert len(editor.edit_requests) == 1
    audit = await execute(client, "agentls.audit", {"runId": result["runId"]})
    kinds = [e["kind"] for e in audit]
    assert "edit_rejected" in kinds and "edit_applied" not in kinds
    rejected = audit[kinds.index("edit_rejected")]
    assert rejected["error"] == "the user declined the edit"
    assert rejected["artifacts"][0]["uri"] == uri
    assert any("edit_rejected" in m.message for m in client.log_messages)


async def test_the_edit_keeps_the_version_the_run_started_from(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    """A user typing during the run bumps the version, so a real editor refuses the stale edit."""
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text(DOCUMENTED_MEAN, chunks=20, chunk_delay=0.02))
    command = asyncio.ensure_future(
        execute(
            client,
            "agentls.delegate",
            {"agent": "document", "uri": uri, "range": lsp_range((7, 0), (9, 0))},
        )
    )
    await editor.wait_until(lambda: editor.outputs)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=0, character=0),
                        end=types.Position(line=0, character=0),
                    ),
                    text="# typed meanwhile\n",
                )
            ],
        )
    )

    await asyncio.wait_for(command, 10)

    _, version, _ = only_text_edit(editor.edit_requests[0])
    assert version == 1


async def test_a_selection_after_wide_characters_is_edited_in_utf16_units(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    path = workspace / "src" / "greet.py"
    path.write_text('msg = "😀" + name  # greet\n')
    uri = open_file(client, path)
    model.enqueue(Text("```python\nuser_name\n```"))

    # "name" starts at code point 12, UTF-16 unit 13 (the emoji is two units).
    await execute(
        client,
        "agentls.delegate",
        {"agent": "refactor", "uri": uri, "range": lsp_range((0, 13), (0, 17))},
    )

    assert "```py\nname\n```" in model.requests[0]["messages"][-1]["content"]
    _, _, edit = only_text_edit(editor.edit_requests[0])
    assert edit.range == types.Range(
        start=types.Position(line=0, character=13), end=types.Position(line=0, character=17)
    )
    assert edit.new_text == "user_name"


async def test_a_selection_past_the_end_of_a_line_ends_at_the_line_end(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    path = workspace / "src" / "last.py"
    path.write_text("x = 1\ny = x + 1")  # no final newline
    uri = open_file(client, path)
    model.enqueue(Text("```python\ny = x + 2\n```"))

    await execute(
        client,
        "agentls.delegate",
        {"agent": "refactor", "uri": uri, "range": lsp_range((1, 0), (1, 99))},
    )

    assert "```py\ny = x + 1\n```" in model.requests[0]["messages"][-1]["content"]
    _, _, edit = only_text_edit(editor.edit_requests[0])
    assert edit.range.end == types.Position(line=1, character=9)
    assert edit.new_text == "y = x + 2"


async def test_a_new_file_is_created_then_filled(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "scaffold.yaml").write_text(
        "name: scaffold\n"
        "description: Creates files\n"
        "instructions: You create the files asked for.\n"
        "mode: tools\n"
        "tools: [propose_edit]\n"
    )
    model.enqueue(
        ToolCall(
            "propose_edit", {"path": "src/limits.py", "old_text": "", "new_text": "MAX = 3\n"}
        ),
        Text("Created src/limits.py."),
    )

    await execute(
        client,
        "agentls.delegate",
        {"agent": "scaffold", "goal": "add limits", "uri": uri_of(workspace / "src" / "app.py")},
    )

    (request,) = editor.edit_requests
    assert request.label == "agentls: scaffold"
    create, fill = request.edit.document_changes or []
    new_uri = uri_of(workspace / "src" / "limits.py")
    assert isinstance(create, types.CreateFile)
    assert create.uri == new_uri
    assert create.options is not None and create.options.ignore_if_exists
    assert isinstance(fill, types.TextDocumentEdit)
    assert fill.text_document.uri == new_uri
    assert [e.new_text for e in fill.edits] == ["MAX = 3\n"]
    assert not (workspace / "src" / "limits.py").exists(), "the editor creates it, not the server"


@pytest.mark.parametrize(
    "capabilities",
    [
        types.ClientCapabilities(
            window=default_capabilities().window,
            workspace=types.WorkspaceClientCapabilities(configuration=True, apply_edit=True),
        )
    ],
)
async def test_a_client_without_document_changes_gets_a_changes_map(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    capabilities: types.ClientCapabilities,
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text(DOCUMENTED_MEAN))

    await execute(
        client,
        "agentls.delegate",
        {"agent": "document", "uri": uri, "range": lsp_range((7, 0), (9, 0))},
    )

    (request,) = editor.edit_requests
    assert request.edit.document_changes is None
    assert request.edit.changes is not None
    (edit,) = request.edit.changes[uri]
    assert edit.range.start.line == 7
