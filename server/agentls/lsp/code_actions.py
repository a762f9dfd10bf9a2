"""textDocument/codeAction: on a non-empty selection, one action per agent that offers one.

Each action carries the `agentls.delegate` command for that range, so any LSP client can run it.
Only files inside a workspace folder get actions (an `untitled:` buffer has nowhere to keep state
and nothing to edit on disk). Answering needs only the folder's agent registry, loaded off the
event loop: selecting text creates no state, opens no database and runs no recovery.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from agentls.lsp.command_ids import DELEGATE

if TYPE_CHECKING:
    from agentls.core.registry import AgentRegistry
    from agentls.lsp.server import AgentLanguageServer

KIND = types.CodeActionKind.Refactor + ".agentls"


def _folder_root(ls: AgentLanguageServer, params: types.CodeActionParams) -> Path | None:
    """The workspace folder to offer actions from; None when nothing is offered here."""
    rng = params.range
    if rng.start == rng.end:
        return None
    only = params.context.only
    if only and not any(KIND.startswith(kind) for kind in only):
        return None
    path = ls.path_of(params.text_document.uri)
    return ls.folders.root_of(path) if path is not None else None


def _actions(registry: AgentRegistry, params: types.CodeActionParams) -> list[types.CodeAction]:
    rng = params.range
    actions = []
    for agent in registry:
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


async def _actions_when_loaded(
    ls: AgentLanguageServer, root: Path, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    return _actions(await ls.folders.engine(root).agents(), params) or None


def code_actions(
    ls: AgentLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction] | asyncio.Future[list[types.CodeAction] | None] | None:
    """The actions, answered in the loop iteration that read the request once the folder's agents
    are loaded; before that, a future the protocol answers with when they are."""
    root = _folder_root(ls, params)
    if root is None:
        return None
    registry = ls.folders.engine(root).loaded_agents()
    if registry is not None:
        return _actions(registry, params) or None
    return asyncio.ensure_future(_actions_when_loaded(ls, root, params))


def register(server: AgentLanguageServer) -> None:
    # A plain function, not a coroutine: pygls runs a coroutine handler as a task (the next loop
    # iteration) and sends its answer from a done callback (one more), each behind every chunk
    # that streaming runs have waiting.
    server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[KIND], resolve_provider=False),
    )(code_actions)
