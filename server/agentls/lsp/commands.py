"""workspace/executeCommand: delegate, delegateParallel, createAgent, cancel, listAgents, budget, audit.

The command registry only: each command takes one object argument (camelCase), parsed here, and is
carried out by its feature module. Bad arguments, unknown agents and URIs outside the workspace
folders answer InvalidParams with a message naming the argument; the server keeps serving.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from agentls.core.budget_set import LimitChanges, LimitError, aset_limits, limit_changes
from agentls.core.state_check import StateError
from agentls.lsp import wire
from agentls.lsp.arguments import (
    AuditArgs,
    BudgetArgs,
    CancelArgs,
    CreateAgentArgs,
    DelegateArgs,
    DelegateParallelArgs,
    check_known_agent,
    parse_args,
)
from agentls.lsp.command_ids import (
    AUDIT,
    BUDGET,
    CANCEL,
    CREATE_AGENT,
    DELEGATE,
    DELEGATE_PARALLEL,
    LIST_AGENTS,
)
from agentls.lsp.create_agent import create_agent
from agentls.lsp.delegate import delegate
from agentls.lsp.folders import load_registry_off_loop
from agentls.lsp.parallel import delegate_parallel

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer


def cancel(ls: AgentLanguageServer, args: CancelArgs) -> dict[str, Any]:
    runtimes = ls.folders.runtimes()
    if args.run_id and not any(args.run_id in r.active_runs for r in runtimes):
        raise JsonRpcInvalidParams(f"{CANCEL}: argument 'runId': no run {args.run_id!r} in flight")
    cancelled: list[str] = []
    for runtime in runtimes:
        if args.run_id is None or args.run_id in runtime.active_runs:
            cancelled.extend(runtime.cancel(args.run_id))
    return {"cancelled": cancelled}


async def list_agents(ls: AgentLanguageServer) -> list[dict[str, Any]]:
    if not ls.folders.roots():
        # No folder: the agents there are (built-ins, the user's own), though none can run here.
        settings = ls.settings.engine(trusted=ls.trusted)
        registry = await asyncio.to_thread(load_registry_off_loop, None, settings)
        return [a.summary() for a in registry]
    return [a.summary() for a in await ls.folders.default(LIST_AGENTS).agents()]


async def budget(ls: AgentLanguageServer, args: BudgetArgs) -> dict[str, Any]:
    from agentls.lsp.events import budget_payload

    changes = _limit_changes(args) if args.action == "set" else None
    runtime = await ls.folders.default(BUDGET).get_runtime()
    budgeter = runtime.budgeter
    # Ledger transactions run on a worker thread: a busy ledger never stalls the server.
    if args.agent is not None and args.action != "get" and not args.allow_unknown_agent:
        known = {*runtime.registry.names(), *(await budgeter.asnapshot()).agents}
        check_known_agent(BUDGET, args.agent, known)
    try:
        if changes is not None:
            await aset_limits(budgeter, changes)
        elif args.action == "reset":
            await budgeter.areset(agent=args.agent)
    except StateError as exc:
        # E.g. a team database refusing a member's change of a limit: its sentence, as asked.
        raise JsonRpcException(
            f"{BUDGET}: {exc}", code=types.LSPErrorCodes.RequestFailed.value
        ) from None
    return budget_payload(await budgeter.asnapshot(), budgeter.user)


def _limit_changes(args: BudgetArgs) -> LimitChanges:
    """What `set` writes, parsed as `agentls budget set` parses it (core/budget_set.py)."""
    try:
        return limit_changes(args.limit, agent=args.agent, user=args.user, per=args.per)
    except LimitError as exc:
        raise JsonRpcInvalidParams(f"{BUDGET}: argument {exc.argument!r} {exc}") from None


def _check_set_only(args: BudgetArgs) -> None:
    # A reset meant for one user that reset everyone's usage would be worse than a refusal.
    for name, value in (("per", args.per), ("user", args.user)):
        if value is not None and args.action != "set":
            raise JsonRpcInvalidParams(
                f"{BUDGET}: argument {name!r} applies to action 'set' only, not {args.action!r}"
            )


async def audit(ls: AgentLanguageServer, args: AuditArgs) -> list[dict[str, Any]]:
    runtime = await ls.folders.default(AUDIT).get_runtime()
    store = runtime.audit
    if store is None:
        return []
    # Filters and the limit run in SQL, on a worker thread: the history can be long.
    events = await asyncio.to_thread(
        store.query, run_id=args.run_id, agent=args.agent, since=args.since, limit=args.limit
    )
    return [wire.event(e, runtime.workspace) for e in events]


def _ours(ls: LanguageServer) -> AgentLanguageServer:
    # pygls resolves a command handler's annotations when it is called, so handlers name pygls's
    # class (this module imports the server module for types only); the instance is ours.
    return cast("AgentLanguageServer", ls)


def register(server: AgentLanguageServer) -> None:
    @server.command(DELEGATE)
    async def cmd_delegate(ls: LanguageServer, *raw: Any) -> dict[str, Any]:
        return await delegate(_ours(ls), parse_args(DELEGATE, DelegateArgs, raw))

    @server.command(DELEGATE_PARALLEL)
    async def cmd_delegate_parallel(ls: LanguageServer, *raw: Any) -> dict[str, Any]:
        return await delegate_parallel(
            _ours(ls), parse_args(DELEGATE_PARALLEL, DelegateParallelArgs, raw)
        )

    @server.command(CREATE_AGENT)
    async def cmd_create_agent(ls: LanguageServer, *raw: Any) -> dict[str, Any]:
        return await create_agent(_ours(ls), parse_args(CREATE_AGENT, CreateAgentArgs, raw))

    @server.command(CANCEL)
    def cmd_cancel(ls: LanguageServer, *raw: Any) -> dict[str, Any]:
        return cancel(_ours(ls), parse_args(CANCEL, CancelArgs, raw))

    @server.command(LIST_AGENTS)
    async def cmd_list_agents(ls: LanguageServer, *raw: Any) -> list[dict[str, Any]]:
        return await list_agents(_ours(ls))

    @server.command(BUDGET)
    async def cmd_budget(ls: LanguageServer, *raw: Any) -> dict[str, Any]:
        args = parse_args(BUDGET, BudgetArgs, raw)
        _check_set_only(args)
        return await budget(_ours(ls), args)

    @server.command(AUDIT)
    async def cmd_audit(ls: LanguageServer, *raw: Any) -> list[dict[str, Any]]:
        return await audit(_ours(ls), parse_args(AUDIT, AuditArgs, raw))
