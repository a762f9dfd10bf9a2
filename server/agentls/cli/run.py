"""`agentls run AGENT --goal TEXT --file PATH [--lines A-B] [--budget N] [--apply [--confirm]]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agentls.cli import CliError, workspace_of
from agentls.cli.approvals import add_security_options
from agentls.cli.common import (
    add_budget_options,
    add_model_options,
    positive_int,
    settings_from,
    target_from,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="delegate a file or a line range to an agent")
    parser.add_argument("agent", help="agent name (see `agentls agents`)")
    parser.add_argument(
        "--goal", help="what the agent should do (default: the agent's description)"
    )
    parser.add_argument("--file", type=Path, required=True, help="the file to work on")
    parser.add_argument(
        "--lines", help="line range A-B (1-based, inclusive); default: the whole file"
    )
    parser.add_argument("--budget", type=positive_int, help="token budget for this run")
    add_budget_options(parser)
    parser.add_argument("--apply", action="store_true", help="write proposed edits to disk")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    add_model_options(parser)
    add_security_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentls.cli.approvals import TerminalPrompt, confirm_each, terminal_approver
    from agentls.cli.edits import shown_diff, write_edits
    from agentls.cli.progress import TerminalProgress
    from agentls.cli.visible import json_visible, markup, visible
    from agentls.core.definitions import Mode, UnknownAgentError
    from agentls.core.engine import build_runtime, load_registry
    from agentls.core.events import RunStatus
    from agentls.core.runtime import RunResult
    from agentls.core.target import ProposedEdit

    # Check every argument before the workspace's state is opened (or created).
    if args.confirm and not args.apply:
        raise CliError("--confirm asks before writing each edit: use it with --apply")
    workspace = workspace_of(args)
    target = target_from(args, args.file, args.lines)
    settings = settings_from(args)
    registry = load_registry(workspace, settings)
    for error in registry.errors:
        print(f"agentls: warning: {visible(str(error))}", file=sys.stderr)
    try:
        definition = registry.get(args.agent).definition
    except UnknownAgentError as exc:
        raise CliError(str(exc)) from None
    prompt = TerminalPrompt()
    runtime = build_runtime(
        workspace, settings, registry=registry, approver=terminal_approver(prompt)
    )
    # The answer is the result (stdout); an edit agent's result is the diff, so its raw answer
    # streams with the progress lines (stderr).
    answer_out = None if definition.mode is Mode.EDIT else sys.stdout
    progress = TerminalProgress(stream_output=not args.json, output=answer_out)

    refused: dict[str, str] = {}  # path -> why its edits were not written

    async def apply(edits: list[ProposedEdit]) -> list[tuple[bool, str | None]]:
        # The edit-mode target's edits apply to the text the run read, nothing newer.
        bases = {runtime.sandbox.relative(target.path): target.content_sha256()}
        refusals: list[str | None] = [None] * len(edits)
        if args.confirm:
            diffs = {i: shown_diff(runtime.workspace, [e]) for i, e in enumerate(edits)}
            refusals = await confirm_each(prompt, edits, diffs)
        chosen = [e for e, why in zip(edits, refusals, strict=True) if why is None]
        written = iter(await asyncio.to_thread(write_edits, runtime.workspace, chosen, bases))
        outcomes = [(False, why) if why is not None else next(written) for why in refusals]
        for edit, (ok, reason) in zip(edits, outcomes, strict=True):
            if not ok:
                refused[edit.path] = reason or "not written"
        return outcomes

    async def go() -> RunResult:
        try:
            return await runtime.delegate(
                definition,
                args.goal or definition.description,
                target,
                budget=args.budget,
                apply=apply if args.apply else None,
                listener=progress,
            )
        finally:
            await runtime.aclose()

    result = asyncio.run(go())
    out = Console(highlight=False, emoji=False)
    for reason in refused.values():
        print(f"agentls: not written: {visible(reason)}", file=sys.stderr)
    for warning in result.warnings:
        print(f"agentls: warning: {visible(warning)}", file=sys.stderr)
    if args.json:
        print(json_visible(result.model_dump_json(indent=2)))
    elif result.edits and not args.apply:
        out.print("[bold]Proposed edits[/bold] (run again with --apply to write them):")
        print(shown_diff(workspace, result.edits), end="")
    elif written := sorted({e.path for e in result.edits} - set(refused)):
        out.print(f"[green]Wrote[/green] {', '.join(markup(path) for path in written)}")
    if refused:
        return 1
    return 0 if result.status is RunStatus.FINISHED else 1
