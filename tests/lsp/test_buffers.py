"""Agents see what the user sees: tools read the editor's unsaved buffers, not the disk."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import execute, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

UNSAVED = "def brand_new():\n    return 'typed but not saved'\n"


async def test_read_file_sees_the_unsaved_buffer(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    app = workspace / "src" / "app.py"
    uri = uri_of(app)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=3, text=UNSAVED
            )
        )
    )
    model.enqueue(ToolCall("read_file", {"path": "src/app.py"}), Text("It returns a string."))

    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "research", "goal": "What does brand_new return?", "uri": uri},
    )

    assert result["status"] == "finished"
    tool_reply = model.requests[1]["messages"][-1]
    assert tool_reply["role"] == "tool"
    assert "typed but not saved" in tool_reply["content"]
    assert "typed but not saved" not in app.read_text()
