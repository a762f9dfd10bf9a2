"""The `confirmEdits` setting: every agent edit waits for the user's confirmation in the editor.

Clients that support change annotations get the edit with one `ChangeAnnotation` (label: agent
and goal, `needsConfirmation: true`) that every text edit and file creation references; VS Code
then opens its refactor preview instead of applying. Clients without that support would apply
annotated edits silently, so they are asked first with window/showMessageRequest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from lsprotocol import types

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

APPLY = "Apply"
DISCARD = "Discard"


def supports_annotations(ls: AgentLanguageServer) -> bool:
    ws = ls.client_capabilities.workspace
    edit = ws.workspace_edit if ws else None
    return bool(edit and edit.document_changes and edit.change_annotation_support)


def label_for(agent: str, goal: str) -> str:
    goal = " ".join(goal.split())
    if len(goal) > 120:
        goal = goal[:119] + "…"
    return f"agentls · {agent}: {goal}" if goal else f"agentls · {agent}"


def annotated(edit: types.WorkspaceEdit, agent: str, goal: str) -> types.WorkspaceEdit:
    """The same edit with every change referencing one annotation that needs confirmation."""
    annotation_id = f"agentls.{agent}"
    changes: list[types.TextDocumentEdit | types.CreateFile | types.RenameFile | types.DeleteFile]
    changes = []
    for change in edit.document_changes or []:
        if isinstance(change, types.TextDocumentEdit):
            edits = [
                types.AnnotatedTextEdit(
                    range=e.range, new_text=e.new_text, annotation_id=annotation_id
                )
                for e in change.edits
                if isinstance(e, types.TextEdit | types.AnnotatedTextEdit)
            ]
            changes.append(attrs.evolve(change, edits=edits))
        else:
            changes.append(attrs.evolve(change, annotation_id=annotation_id))
    annotation = types.ChangeAnnotation(
        label=label_for(agent, goal),
        needs_confirmation=True,
        description=f"Proposed by the agentls agent '{agent}'; review it before applying.",
    )
    return types.WorkspaceEdit(
        document_changes=changes, change_annotations={annotation_id: annotation}
    )


async def confirmed(
    ls: AgentLanguageServer, edit: types.WorkspaceEdit, agent: str, goal: str, count: int
) -> tuple[types.WorkspaceEdit, str | None]:
    """The edit to send (annotated when the client can confirm it), or a reason it is not sent."""
    if supports_annotations(ls) and edit.document_changes is not None:
        return annotated(edit, agent, goal), None
    files = sorted({*(edit.changes or {})} | {_uri(c) for c in edit.document_changes or []})
    names = ", ".join(f.rsplit("/", 1)[-1] for f in files)
    plural = "s" if count != 1 else ""
    params = types.ShowMessageRequestParams(
        type=types.MessageType.Info,
        message=f"{label_for(agent, goal)}\n\nApply {count} edit{plural} to {names}?",
        actions=[types.MessageActionItem(title=APPLY), types.MessageActionItem(title=DISCARD)],
    )
    from agentls.lsp.approvals import ask_user

    try:
        title = await ask_user(ls, params)
    except Exception as exc:
        return edit, f"the editor could not ask for confirmation ({exc})"
    if title == APPLY:
        return edit, None
    return edit, "the user did not confirm the edit"


def _uri(change: object) -> str:
    if isinstance(change, types.TextDocumentEdit):
        return change.text_document.uri
    return str(getattr(change, "uri", ""))
