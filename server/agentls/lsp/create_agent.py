"""agentls.createAgent: the model writes a definition from a sentence; it runs at once on the
selection (when given) and is saved to the workspace's .agentls/agents/ when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from agentls.core.events import new_id
from agentls.lsp.arguments import CreateAgentArgs
from agentls.lsp.command_ids import CREATE_AGENT
from agentls.lsp.delegate import run_result, run_with_progress, target_for
from agentls.lsp.request_cancel import on_request_cancelled

if TYPE_CHECKING:
    from agentls.core.target import Target
    from agentls.lsp.folders import FolderEngine
    from agentls.lsp.server import AgentLanguageServer


async def create_agent(ls: AgentLanguageServer, args: CreateAgentArgs) -> dict[str, Any]:
    target: Target | None = None
    versions: dict[str, int | None] = {}
    folder: FolderEngine[AgentLanguageServer]
    if args.uri:
        folder, target, versions = target_for(ls, CREATE_AGENT, args.uri, args.range)
    elif args.range is not None:
        raise JsonRpcInvalidParams(f"{CREATE_AGENT}: argument 'range' needs 'uri'")
    else:
        folder = ls.folders.default(CREATE_AGENT)
    creation_id, run_id = new_id(), new_id()

    def cancel_both() -> None:
        if folder.runtime is not None:
            for rid in (creation_id, run_id):
                folder.runtime.cancel_when_started(rid)

    # Linked before the first await, so a cancel that arrives meanwhile still counts.
    cancelled = False

    def on_cancel() -> None:
        nonlocal cancelled
        cancelled = True
        cancel_both()

    on_request_cancelled(ls, on_cancel)
    runtime = await folder.runtime_for_run()
    # Imported with the runtime, on its worker thread (folders.py): a lookup here.
    from agentls.core.create import CREATOR, CreateAgentError
    from agentls.core.create import create_agent as create
    from agentls.lsp.events import bridge_of

    if cancelled:
        cancel_both()
    bridge = bridge_of(runtime)
    await bridge.begin_progress(creation_id, f"{CREATOR.name}: {args.prompt}")
    try:
        created = await create(
            runtime,
            args.prompt,
            run_id=creation_id,
            selection=target,
            budget=args.budget,
            save=args.save,
            allow_edit_tools=ls.settings.allow_generated_edit_tools,
        )
    except CreateAgentError as exc:
        raise JsonRpcException(
            f"{CREATE_AGENT}: {exc}",
            code=-32603,
            data={"creation": run_result(ls, runtime, exc.creation)},
        ) from None
    except FileExistsError as exc:
        raise JsonRpcInvalidParams(
            f"{CREATE_AGENT}: argument 'save': {exc.filename} already exists"
        ) from None
    definition = created.definition
    out: dict[str, Any] = {
        "definition": definition.model_dump(mode="json"),
        "savedTo": str(created.saved_to) if created.saved_to else None,
        "creation": run_result(ls, runtime, created.creation),
        "result": None,
    }
    if args.run:
        out["result"] = await run_with_progress(
            ls, folder, run_id, definition, args.goal or args.prompt, target, versions, args.budget
        )
    return out
