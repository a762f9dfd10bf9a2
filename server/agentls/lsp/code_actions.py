"""textDocument/codeAction: on a non-empty selection, one action per agent that offers one.

Each action carries the `agentls.delegate` command for that range, so any LSP client can run it.
Only files inside a workspace folder get actions (an `untitled:` buffer has nowhere to keep state
and nothing to edit on disk). Answering needs only the folder's agent registry, loaded off the
event loop: selecting text creates no state, opens no database and runs no recovery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from agentls.lsp.command_ids import DELEGATE

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

KIND = types.CodeActionKind.Refactor + ".agentls"


async def actions_for(
    ls: AgentLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction]:
    rng = params.range
    if rng.start == rng.end:
        return []
    only = params.context.only
    if only and not any(KIND.startswith(kind) for kind in only):
        return []
    path = ls.path_of(params.text_document.uri)
    root = ls.folders.root_of(path) if path is not None else None
    if root is None:
        return []
    actions = []
    for agent in await ls.folders.engine(root).agents():
        d = agent.definition
        if not d.code_action:
            continue
        arguments = {
            "agent": d.name,
            "goal": d.description,
            "uri": params.text_document.uri,
            "range": {
                "start": {"line": rng.start.line, "character": rng.start.character},
                "end": {"line": rng.end.line, "character": rng.end.character},
            },
        }
        title = f"Ask {d.name}: {d.code_action}"
        actions.append(
            types.CodeAction(
                title=title,
                kind=KIND,
                command=types.Command(title=title, command=DELEGATE, arguments=[arguments]),
            )
        )
    return actions


def register(server: AgentLanguageServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[KIND], resolve_provider=False),
    )
    async def on_code_action(
        ls: AgentLanguageServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        return await actions_for(ls, params) or None
