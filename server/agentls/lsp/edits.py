"""Applies agent edits through workspace/applyEdit, labelled with the agent.

Edits to an open document carry the version the run started from, so a client rejects them
rather than overwriting text the user typed meanwhile; the refusal is recorded as rejected.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import from_fs_path

from agentls.core.target import ProposedEdit
from agentls.lsp import wire

if TYPE_CHECKING:
    from agentls.core.runtime import EditApplier
    from agentls.lsp.server import AgentLanguageServer


def _supports_document_changes(ls: AgentLanguageServer) -> bool:
    ws = ls.client_capabilities.workspace
    return bool(ws and ws.workspace_edit and ws.workspace_edit.document_changes)


def workspace_edit(
    ls: AgentLanguageServer,
    edits: list[ProposedEdit],
    versions: dict[str, int | None],
    workspace: Path,
) -> types.WorkspaceEdit:
    by_uri: dict[str, list[types.TextEdit]] = defaultdict(list)
    creates: list[str] = []
    encoding = str(getattr(ls.workspace.position_encoding, "value", None) or "utf-16")
    for edit in edits:
        uri = from_fs_path(str(workspace / edit.path))
        doc = ls.workspace.text_documents.get(uri) if not edit.creates_file else None
        if edit.creates_file:
            creates.append(uri)
        # Positions count in the client's units over the text the client holds (the buffer when
        # open, else the file as stored).
        text = None if edit.creates_file else wire.document_text(doc, uri)
        by_uri[uri].append(wire.text_edit(text, edit, encoding))
    if not _supports_document_changes(ls):
        return types.WorkspaceEdit(changes=dict(by_uri))
    changes: list[types.TextDocumentEdit | types.CreateFile] = []
    for uri in creates:
        changes.append(
            types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True))
        )
    for uri, text_edits in by_uri.items():
        # The target carries the version its run started from; another open file (edited by a
        # tool, which read its buffer) the version it has now.
        open_doc = ls.workspace.text_documents.get(uri)
        version = versions.get(uri, open_doc.version if open_doc is not None else None)
        doc_id = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        changes.append(types.TextDocumentEdit(text_document=doc_id, edits=list(text_edits)))
    return types.WorkspaceEdit(document_changes=changes)


def applier(
    ls: AgentLanguageServer,
    agent: str,
    versions: dict[str, int | None],
    workspace: Path,
    goal: str = "",
) -> EditApplier:
    """Applies a run's edits (paths relative to `workspace`, the run's folder) in the editor."""

    async def apply(edits: list[ProposedEdit]) -> list[tuple[bool, str | None]]:
        edit = workspace_edit(ls, edits, versions, workspace)
        if ls.settings.confirm_edits:
            from agentls.lsp.confirm_edits import confirmed

            edit, refused = await confirmed(ls, edit, agent, goal, len(edits))
            if refused is not None:
                return [(False, refused)] * len(edits)
        params = types.ApplyWorkspaceEditParams(edit=edit, label=f"agentls: {agent}")
        try:
            result = await ls.workspace_apply_edit_async(params)
        except Exception as exc:
            return [(False, f"the editor failed the edit request: {exc}")] * len(edits)
        if result.applied:
            return [(True, None)] * len(edits)
        reason = result.failure_reason or "the editor refused the edit"
        return [(False, reason)] * len(edits)

    return apply
