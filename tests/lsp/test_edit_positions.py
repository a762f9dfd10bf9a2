"""Edits land on the right text in the editor: LSP's line model (no split on form feeds or
U+2028) and UTF-16 positions, for open buffers and for files the editor has not opened."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, lsp_range, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

FORM_FEED_SOURCE = "x = 1\x0c\nb = 1\u2028 # note\nc = 2\n"


def open_exact(client: LanguageClient, path: Path, text: str) -> str:
    uri = uri_of(path)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    return uri


def only_edit(editor: Editor) -> types.TextEdit:
    (request,) = editor.edit_requests
    (change,) = request.edit.document_changes or []
    assert isinstance(change, types.TextDocumentEdit)
    (edit,) = change.edits
    assert isinstance(edit, types.TextEdit)
    return edit


async def test_a_selection_after_a_form_feed_is_the_line_the_user_selected(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    path = workspace / "src" / "ff.py"
    path.write_text(FORM_FEED_SOURCE)
    uri = open_exact(client, path, FORM_FEED_SOURCE)
    model.enqueue(Text("```python\nc = 3\n```"))

    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "refactor", "uri": uri, "range": lsp_range((2, 0), (3, 0))},
    )

    assert result["status"] == "finished", result["error"]
    # The model was shown `c = 2`, the line the editor calls line 2.
    assert "c = 2" in model.requests[0]["messages"][-1]["content"]
    assert "b = 1" not in model.requests[0]["messages"][-1]["content"]
    edit = only_edit(editor)
    assert edit.range == types.Range(
        start=types.Position(line=2, character=0), end=types.Position(line=3, character=0)
    )
    assert edit.new_text == "c = 3\n"


async def test_a_tool_edit_to_a_closed_file_counts_utf16_units_on_lsp_lines(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "fixer.yaml").write_text(
        "name: fixer\ndescription: Fixes\ninstructions: You fix.\nmode: tools\n"
        "tools: [propose_edit]\n"
    )
    # Not open in the editor: the server reads it from disk, CRLF and all.
    (workspace / "src" / "emoji.py").write_bytes("a = 1\x0c\r\nname = '😀😀'; x = 2\r\n".encode())
    model.enqueue(
        ToolCall(
            "propose_edit", {"path": "src/emoji.py", "old_text": "x = 2", "new_text": "x = 3"}
        ),
        Text("Fixed."),
    )

    await execute(
        client,
        "agentls.delegate",
        {"agent": "fixer", "goal": "fix x", "uri": uri_of(workspace / "src" / "app.py")},
    )

    edit = only_edit(editor)
    # Line 1 (the form feed does not end a line); each emoji is two UTF-16 units.
    start = len("name = '") + 4 + len("'; ")
    assert edit.range == types.Range(
        start=types.Position(line=1, character=start),
        end=types.Position(line=1, character=start + 5),
    )
    assert edit.new_text == "x = 3"


async def test_an_edit_to_a_closed_crlf_file_keeps_its_line_endings(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    path = workspace / "src" / "win.py"
    path.write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    model.enqueue(Text("```python\nb = 20\nb2 = 21\n```"))

    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "refactor", "uri": uri_of(path), "range": lsp_range((1, 0), (2, 0))},
    )

    assert result["status"] == "finished", result["error"]
    assert "b = 2\r\n" in model.requests[0]["messages"][-1]["content"]
    edit = only_edit(editor)
    assert edit.range == types.Range(
        start=types.Position(line=1, character=0), end=types.Position(line=2, character=0)
    )
    assert edit.new_text == "b = 20\r\nb2 = 21\r\n"
