"""workspace/executeCommand: delegate, delegateParallel, createAgent, cancel, listAgents, budget, audit.

Each command takes one object argument (camelCase). Bad arguments, unknown agents and URIs outside
the workspace answer InvalidParams with a message naming the argument; the server keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from agentls.core.definitions import AgentDefinition
from agentls.core.events import new_id
from agentls.core.runtime import RunResult
from agentls.core.target import Target
from agentls.lsp import wire
from agentls.lsp.arguments import (
    AuditArgs,
    BudgetArgs,
    CancelArgs,
    CreateAgentArgs,
    DelegateArgs,
    DelegateParallelArgs,
    WireRange,
    check_known_agent,
    parse_args,
)
from agentls.lsp.edits import applier
from agentls.lsp.server import AgentLanguageServer

DELEGATE = "agentls.delegate"
DELEGATE_PARALLEL = "agentls.delegateParallel"
CREATE_AGENT = "agentls.createAgent"
CANCEL = "agentls.cancel"
LIST_AGENTS = "agentls.listAgents"
BUDGET = "agentls.budget"
AUDIT = "agentls.audit"


def target_for(
    ls: AgentLanguageServer, command: str, uri: str, rng: WireRange | None
) -> tuple[Target, dict[str, int | None]]:
    """The engine target for a URI (the editor's buffer when open) and the version to edit against."""
    from lsprotocol import types

    path = ls.path_of(uri)
    root = ls.root
    if path is None:
        raise JsonRpcInvalidParams(f"{command}: argument 'uri' {uri!r} is not a file URI")
    if path != root and root not in path.parents:
        raise JsonRpcInvalidParams(
            f"{command}: argument 'uri' {uri!r} is outside the workspace {root}"
        )
    doc = ls.workspace.text_documents.get(
        from_fs_path(str(path))
    ) or ls.workspace.text_documents.get(uri)
    if doc is None and not path.is_file():
        raise JsonRpcInvalidParams(f"{command}: argument 'uri': no such file {path}")
    if doc is None:
        doc = ls.workspace.get_text_document(uri)
    try:
        text = doc.source
    except (OSError, UnicodeDecodeError) as exc:
        raise JsonRpcInvalidParams(
            f"{command}: argument 'uri': cannot read {path}: {exc}"
        ) from None
    engine_range = None
    if rng is not None:
        lsp_range = types.Range(
            start=types.Position(line=rng.start.line, character=rng.start.character),
            end=types.Position(line=rng.end.line, character=rng.end.character),
        )
        if rng.start.line > len(doc.lines):
            # The codec would clamp it to the end: the agent would get an empty selection.
            raise JsonRpcInvalidParams(
                f"{command}: argument 'range' starts at line {rng.start.line}, past the end of "
                f"{path.name} ({len(doc.lines)} lines)"
            )
        try:
            engine_range = wire.engine_range(doc, lsp_range)
        except ValueError as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise JsonRpcInvalidParams(f"{command}: argument 'range': {reason}") from None
    return Target(path=path, range=engine_range, text=text), {doc.uri: doc.version}


def run_result(ls: AgentLanguageServer, result: RunResult) -> dict[str, Any]:
    edits = []
    for e in result.edits:
        uri = from_fs_path(str(ls.runtime.workspace / e.path))
        edits.append(wire.edit(e, uri, ls.workspace.text_documents.get(uri)))
    return {
        "runId": result.run_id,
        "agent": result.agent,
        "status": result.status.value,
        "text": result.text,
        "edits": edits,
        "usage": wire.usage(result.usage),
        "durationMs": round(result.duration_ms, 1),
        "error": result.error,
        "warnings": result.warnings,
    }


def link_request_cancel(ls: AgentLanguageServer, on_cancel: Callable[[], object]) -> None:
    """Call `on_cancel` when the client sends `$/cancelRequest` for the command being handled.

    pygls cancels only the request's outer future for executeCommand, not the handler's task, so
    the command's runs are cancelled from that future's done-callback.
    """
    msg_id = ls.protocol.msg_id
    future = ls.protocol._request_futures.get(msg_id) if msg_id is not None else None
    if future is not None:
        future.add_done_callback(lambda f: on_cancel() if f.cancelled() else None)


def known_agent(ls: AgentLanguageServer, command: str, name: str) -> None:
    if name not in ls.runtime.registry:
        known = ", ".join(ls.runtime.registry.names()) or "none"
        raise JsonRpcInvalidParams(f"{command}: unknown agent {name!r}; known agents: {known}")


async def delegate(ls: AgentLanguageServer, args: DelegateArgs) -> dict[str, Any]:
    runtime = ls.runtime
    known_agent(ls, DELEGATE, args.agent)
    definition = runtime.resolve_agent(args.agent)
    target, versions = target_for(ls, DELEGATE, args.uri, args.range)
    goal = args.goal or definition.description
    run_id = new_id()
    # Linked before the progress round trip, so a cancel that arrives meanwhile still counts.
    link_request_cancel(ls, lambda: runtime.cancel_when_started(run_id))
    return await run_with_progress(ls, run_id, definition, goal, target, versions, args.budget)


async def run_with_progress(
    ls: AgentLanguageServer,
    run_id: str,
    definition: AgentDefinition,
    goal: str,
    target: Target | None,
    versions: dict[str, int | None],
    budget: int | None,
) -> dict[str, Any]:
    """One run with its own progress, edits applied through the editor; the wire result."""
    assert ls.bridge is not None
    await ls.bridge.begin_progress(run_id, f"{definition.name}: {goal}")
    result = await ls.runtime.delegate(
        definition,
        goal,
        target,
        budget=budget,
        run_id=run_id,
        apply=applier(ls, definition.name, versions, goal),
    )
    return run_result(ls, result)


def register(server: AgentLanguageServer) -> None:
    @server.command(DELEGATE)
    async def cmd_delegate(ls: AgentLanguageServer, *raw: Any) -> dict[str, Any]:
        return await delegate(ls, parse_args(DELEGATE, DelegateArgs, raw))

    @server.command(DELEGATE_PARALLEL)
    async def cmd_delegate_parallel(ls: AgentLanguageServer, *raw: Any) -> dict[str, Any]:
        from agentls.lsp.parallel import delegate_parallel

        return await delegate_parallel(ls, parse_args(DELEGATE_PARALLEL, DelegateParallelArgs, raw))

    @server.command(CREATE_AGENT)
    async def cmd_create_agent(ls: AgentLanguageServer, *raw: Any) -> dict[str, Any]:
        from agentls.lsp.create_agent import create_agent

        return await create_agent(ls, parse_args(CREATE_AGENT, CreateAgentArgs, raw))

    @server.command(CANCEL)
    def cmd_cancel(ls: AgentLanguageServer, *raw: Any) -> dict[str, Any]:
        args = parse_args(CANCEL, CancelArgs, raw)
        active = ls.runtime.active_runs if ls.has_runtime else []
        if args.run_id and args.run_id not in active:
            raise JsonRpcInvalidParams(
                f"{CANCEL}: argument 'runId': no run {args.run_id!r} in flight"
            )
        if not ls.has_runtime:
            return {"cancelled": []}
        return {"cancelled": ls.runtime.cancel(args.run_id)}

    @server.command(LIST_AGENTS)
    def cmd_list_agents(ls: AgentLanguageServer, *raw: Any) -> list[dict[str, Any]]:
        return [a.summary() for a in ls.runtime.registry]

    @server.command(BUDGET)
    def cmd_budget(ls: AgentLanguageServer, *raw: Any) -> dict[str, Any]:
        from agentls.lsp.events import budget_payload

        args = parse_args(BUDGET, BudgetArgs, raw)
        budgeter = ls.runtime.budgeter
        if args.agent is not None and args.action != "get" and not args.allow_unknown_agent:
            known = {*ls.runtime.registry.names(), *budgeter.snapshot().agents}
            check_known_agent(BUDGET, args.agent, known)
        if args.action == "set":
            budgeter.set_limit(args.limit, agent=args.agent)
        elif args.action == "reset":
            budgeter.reset(agent=args.agent)
        return budget_payload(budgeter.snapshot())

    @server.command(AUDIT)
    def cmd_audit(ls: AgentLanguageServer, *raw: Any) -> list[dict[str, Any]]:
        args = parse_args(AUDIT, AuditArgs, raw)
        store = ls.runtime.audit
        if store is None:
            return []
        events = store.query(run_id=args.run_id, agent=args.agent)
        return [wire.event(e, ls.runtime.workspace) for e in events[-args.limit :]]
