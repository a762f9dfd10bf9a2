"""One delegated run as the LSP layer sees it: the target a URI names, progress, edits through the
editor, and the wire result. Shared by agentls.delegate, delegateParallel and createAgent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pydantic import ValidationError
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from agentls.core.events import new_id
from agentls.core.target import Target, read_exact
from agentls.lsp import wire
from agentls.lsp.arguments import DelegateArgs, WireRange
from agentls.lsp.command_ids import DELEGATE
from agentls.lsp.edits import applier
from agentls.lsp.request_cancel import on_request_cancelled

if TYPE_CHECKING:
    from agentls.core.definitions import AgentDefinition
    from agentls.core.runtime import AgentRuntime, RunResult
    from agentls.lsp.folders import FolderEngine
    from agentls.lsp.server import AgentLanguageServer


def target_for(
    ls: AgentLanguageServer, command: str, uri: str, rng: WireRange | None
) -> tuple[FolderEngine[AgentLanguageServer], Target, dict[str, int | None]]:
    """The folder of a URI, the engine target (the editor's buffer when open) and the version to
    edit against."""
    folder, path = ls.folders.for_uri(command, uri)
    doc = ls.workspace.text_documents.get(
        from_fs_path(str(path))
    ) or ls.workspace.text_documents.get(uri)
    if doc is None and not path.is_file():
        raise JsonRpcInvalidParams(f"{command}: argument 'uri': no such file {path}")
    opened = doc is not None
    if doc is None:
        doc = ls.workspace.get_text_document(uri)
    try:
        # A closed file exactly as stored (pygls would translate its CRLF line endings).
        text = doc.source if opened else read_exact(path)
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
            engine_range = wire.engine_range(doc, lsp_range, text=text)
        except ValueError as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise JsonRpcInvalidParams(f"{command}: argument 'range': {reason}") from None
    return folder, Target(path=path, range=engine_range, text=text), {doc.uri: doc.version}


def run_result(ls: AgentLanguageServer, runtime: AgentRuntime, result: RunResult) -> dict[str, Any]:
    edits = []
    for e in result.edits:
        uri = from_fs_path(str(runtime.workspace / e.path))
        edits.append(wire.edit(e, uri, ls.workspace.text_documents.get(uri)))
    return {
        "runId": result.run_id,
        "agent": result.agent,
        "status": result.status.value,
        "text": result.text,
        "edits": edits,
        "usage": wire.usage(result.usage),
        # Dollars (core/pricing.py); null when a call's model has no price.
        "costUsd": result.cost_usd,
        "durationMs": round(result.duration_ms, 1),
        "error": result.error,
        "warnings": result.warnings,
    }


def known_agent(runtime: AgentRuntime, command: str, name: str) -> None:
    if name not in runtime.registry:
        known = ", ".join(runtime.registry.names()) or "none"
        raise JsonRpcInvalidParams(f"{command}: unknown agent {name!r}; known agents: {known}")


async def delegate(ls: AgentLanguageServer, args: DelegateArgs) -> dict[str, Any]:
    folder, target, versions = target_for(ls, DELEGATE, args.uri, args.range)
    run_id = new_id()
    cancelled = False

    def on_cancel() -> None:
        nonlocal cancelled
        cancelled = True
        if folder.runtime is not None:
            folder.runtime.cancel_when_started(run_id)

    # Linked before the first await (the runtime build, the progress round trip), so a cancel
    # that arrives meanwhile still counts.
    on_request_cancelled(ls, on_cancel)
    runtime = await folder.runtime_for_run()
    if cancelled:
        runtime.cancel_when_started(run_id)
    known_agent(runtime, DELEGATE, args.agent)
    definition = runtime.resolve_agent(args.agent)
    goal = args.goal or definition.description
    return await run_with_progress(
        ls, folder, run_id, definition, goal, target, versions, args.budget
    )


async def run_with_progress(
    ls: AgentLanguageServer,
    folder: FolderEngine[AgentLanguageServer],
    run_id: str,
    definition: AgentDefinition,
    goal: str,
    target: Target | None,
    versions: dict[str, int | None],
    budget: int | None,
) -> dict[str, Any]:
    """One run with its own progress, edits applied through the editor; the wire result.

    The progress always ends: a run refused before it starts (the audit trail cannot be written)
    raises without a terminal event, so its progress is ended here with the error, and a state
    error answers as every other one does (RequestFailed, shown to the user once).
    """
    from agentls.core.state_check import StateError
    from agentls.lsp.events import bridge_of
    from agentls.lsp.state_errors import state_unavailable

    runtime = await folder.runtime_for_run()
    bridge = bridge_of(runtime)
    await bridge.begin_progress(run_id, f"{definition.name}: {goal}")
    try:
        result = await runtime.delegate(
            definition,
            goal,
            target,
            budget=budget,
            run_id=run_id,
            apply=applier(ls, definition.name, versions, runtime.workspace, goal),
        )
    except StateError as exc:
        error = state_unavailable(ls, exc)
        bridge.end_progress(run_id, error.message)
        raise error from None
    except BaseException as exc:
        bridge.end_progress(run_id, f"failed: {exc}" if str(exc) else "stopped")
        raise
    await bridge.settled()  # the run's events reach the editor before its result
    return run_result(ls, runtime, result)
