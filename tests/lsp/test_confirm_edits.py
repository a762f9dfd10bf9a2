"""The confirmEdits setting: agent edits reach the editor marked as needing the user's confirmation
(a ChangeAnnotation with needsConfirmation that every edit references), or, for an editor without
change annotations, only after the user said Apply to a question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, default_capabilities, execute, lsp_range, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text

NEW_MEAN = '''\
```python
def mean(values):
    """The arithmetic mean of values (which must not be empty)."""
    return sum(values) / len(values)
```'''
GOAL = "Add a docstring to mean"


def with_annotations() -> types.ClientCapabilities:
    capabilities = default_capabilities()
    assert capabilities.workspace is not None
    capabilities.workspace.workspace_edit = types.WorkspaceEditClientCapabilities(
        document_changes=True,
        change_annotation_support=types.ChangeAnnotationsSupportOptions(groups_on_label=True),
    )
    return capabilities


@pytest.fixture
def capabilities() -> types.ClientCapabilities:
    return with_annotations()


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {**settings, "confirmEdits": True}


async def document_mean(client: LanguageClient, workspace: Path) -> dict[str, Any]:
    uri = open_file(client, workspace / "src" / "app.py")
    result: dict[str, Any] = await execute(
        client,
        "agentls.delegate",
        {"agent": "document", "goal": GOAL, "uri": uri, "range": lsp_range((7, 0), (9, 0))},
    )
    return result


def text_edits(request: types.ApplyWorkspaceEditParams) -> list[Any]:
    changes = request.edit.document_changes or []
    return [e for c in changes if isinstance(c, types.TextDocumentEdit) for e in c.edits]


async def test_with_the_setting_each_edit_references_an_annotation_needing_confirmation(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    model.enqueue(Text(NEW_MEAN))

    result = await document_mean(client, workspace)

    assert result["status"] == "finished"
    (request,) = editor.edit_requests
    annotations = request.edit.change_annotations or {}
    ((annotation_id, annotation),) = annotations.items()
    assert annotation.needs_confirmation is True
    assert "document" in annotation.label and GOAL in annotation.label
    edits = text_edits(request)
    assert edits, "the edit carries its text edits"
    for edit in edits:
        assert isinstance(edit, types.AnnotatedTextEdit)
        assert edit.annotation_id == annotation_id
    assert '"""The arithmetic mean' in edits[0].new_text


class TestWithoutTheSetting:
    @pytest.fixture
    def settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {**settings, "confirmEdits": False}

    async def test_edits_are_plain_and_carry_no_annotation(
        self, client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
    ) -> None:
        model.enqueue(Text(NEW_MEAN))

        await document_mean(client, workspace)

        (request,) = editor.edit_requests
        assert request.edit.change_annotations is None
        assert all(type(e) is types.TextEdit for e in text_edits(request))


class TestAnEditorWithoutChangeAnnotations:
    """It would apply annotated edits without asking, so the server asks first."""

    @pytest.fixture
    def capabilities(self) -> types.ClientCapabilities:
        return default_capabilities()

    @pytest.fixture
    def answers(self, client: LanguageClient, editor: Editor) -> list[str]:
        answers: list[str] = []

        @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def ask(params: types.ShowMessageRequestParams) -> types.MessageActionItem:
            editor.note()
            assert "document" in params.message and "app.py" in params.message
            return types.MessageActionItem(title=answers.pop(0))

        return answers

    async def test_discard_sends_no_edit_and_records_it_rejected(
        self,
        client: LanguageClient,
        workspace: Path,
        model: ScriptedOpenAI,
        editor: Editor,
        answers: list[str],
    ) -> None:
        answers.append("Discard")
        model.enqueue(Text(NEW_MEAN))

        result = await document_mean(client, workspace)

        assert editor.edit_requests == []
        rejected = [e for e in editor.run_events(result["runId"]) if e["kind"] == "edit_rejected"]
        assert rejected[0]["error"] == "the user did not confirm the edit"

    async def test_apply_sends_the_edit(
        self,
        client: LanguageClient,
        workspace: Path,
        model: ScriptedOpenAI,
        editor: Editor,
        answers: list[str],
    ) -> None:
        answers.append("Apply")
        model.enqueue(Text(NEW_MEAN))

        await document_mean(client, workspace)

        (request,) = editor.edit_requests
        assert text_edits(request)
