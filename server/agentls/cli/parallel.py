"""`agentls parallel`: several agents at once on one target, or a task file of many."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from agentls.cli import CliError, workspace_of
from agentls.cli.approvals import add_security_options
from agentls.cli.common import (
    MAX_TOKENS,
    add_budget_options,
    add_model_options,
    positive_int,
    settings_from,
    target_from,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "parallel",
        help="delegate to several agents in parallel",
        description="Either --agent (repeatable) with one --file, or --tasks FILE listing "
        "{agent, goal?, file?, lines?, budget?} entries (YAML or JSON; relative files are "
        "relative to the workspace).",
    )
    parser.add_argument("--agent", action="append", default=[], help="agent name (repeatable)")
    parser.add_argument("--goal", help="goal for every --agent (default: each agent's description)")
    parser.add_argument("--file", type=Path, help="the file the --agent runs work on")
    parser.add_argument("--lines", help="line range A-B of --file")
    parser.add_argument("--tasks", type=Path, help="YAML/JSON file with a list of tasks")
    parser.add_argument("--budget", type=positive_int, help="token budget per run")
    add_budget_options(parser)
    parser.add_argument(
        "--max-parallel", type=positive_int, default=8, help="runs in flight (default 8)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_model_options(parser)
    add_security_options(parser, confirm=False)
    parser.set_defaults(func=run)


def _tasks_from_file(args: argparse.Namespace) -> list[Any]:
    import yaml

    from agentls.core.parallel import ParallelTask
    from agentls.core.safe_yaml import YamlProblem, compose_untrusted, construct

    path: Path = args.tasks
    try:
        # A tasks file may come with a repository: bounded like a definition file.
        entries = construct(compose_untrusted(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise CliError(f"--tasks {path}: {exc.strerror}") from None
    except YamlProblem as exc:
        raise CliError(f"--tasks {path}:{exc.line}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"--tasks {path}: not valid YAML/JSON: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise CliError(f"--tasks {path}: expected a non-empty list of tasks")
    tasks = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("agent"), str):
            raise CliError(f"--tasks {path}: task {i}: needs at least an 'agent' name")
        unknown = set(entry) - {"agent", "goal", "file", "lines", "budget"}
        if unknown:
            raise CliError(f"--tasks {path}: task {i}: unknown field {sorted(unknown)[0]!r}")
        where = f"--tasks {path}: task {i}"
        if entry.get("goal") is not None and not isinstance(entry["goal"], str):
            raise CliError(f"{where}: goal must be text")
        if entry.get("lines") is not None and not entry.get("file"):
            raise CliError(f"{where}: lines needs a file")
        target = None
        if entry.get("file"):
            # Relative files in a task file are relative to the workspace, wherever agentls runs.
            file = Path(str(entry["file"]))
            if not file.is_absolute():
                file = workspace_of(args) / file
            lines = str(entry["lines"]) if entry.get("lines") is not None else None
            try:
                target = target_from(args, file, lines)
            except CliError as exc:
                raise CliError(f"{where}: {str(exc).lstrip('-')}") from None
        budget = entry.get("budget", args.budget)
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int) or not 0 < budget <= MAX_TOKENS
        ):
            raise CliError(
                f"{where}: budget must be a whole number above 0 (at most {MAX_TOKENS:,})"
            )
        tasks.append(
            ParallelTask(agent=entry["agent"], goal=entry.get("goal"), target=target, budget=budget)
        )
    return tasks


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from agentls.cli.progress import TerminalProgress, tokens
    from agentls.cli.visible import cell, json_visible, visible
    from agentls.core.engine import build_runtime, load_registry
    from agentls.core.events import RunStatus
    from agentls.core.parallel import ParallelResult, ParallelTask, delegate_parallel

    if bool(args.agent) == bool(args.tasks):
        raise CliError("give either --agent (with --file) or --tasks FILE")
    # Check every argument before the workspace's state is opened (or created).
    workspace = workspace_of(args)
    if args.tasks:
        tasks = _tasks_from_file(args)
    else:
        target = target_from(args, args.file, args.lines) if args.file else None
        tasks = [
            ParallelTask(agent=a, goal=args.goal, target=target, budget=args.budget)
            for a in args.agent
        ]
    settings = settings_from(args)
    registry = load_registry(workspace, settings)
    known = ", ".join(registry.names())
    for i, task in enumerate(tasks, 1):
        if task.agent_name not in registry:
            where = f"--tasks {args.tasks}: task {i}" if args.tasks else "--agent"
            raise CliError(f"{where}: unknown agent {task.agent_name!r}; known agents: {known}")
    console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    progress = TerminalProgress(console, stream_output=False, prefix_agents=True)

    from agentls.cli.approvals import TerminalPrompt, terminal_approver

    # Questions from parallel runs queue on the terminal, one at a time.
    approver = terminal_approver(TerminalPrompt())
    runtime = build_runtime(workspace, settings, registry=registry, approver=approver)

    async def go() -> ParallelResult:
        try:
            return await delegate_parallel(
                runtime, tasks, max_parallel=args.max_parallel, listener=progress
            )
        finally:
            await runtime.aclose()

    result = asyncio.run(go())
    if args.json:
        print(json_visible(result.model_dump_json(indent=2)))
    else:
        out = Console(highlight=False, emoji=False)
        for r in result.results:
            if r.text:
                out.rule(cell(f"{r.agent} · {r.status.value}", one_line=True))
                out.print(visible(r.text), markup=False, emoji=False)
        table = Table(title=f"{len(result.results)} runs in {result.wall_ms / 1000:.1f}s")
        for column in ("agent", "status", "tokens", "time", "error"):
            table.add_column(column)
        for r in result.results:
            table.add_row(
                cell(r.agent, one_line=True),
                r.status.value,
                tokens(r.usage),
                f"{r.duration_ms / 1000:.1f}s",
                cell(r.error or ""),
            )
        out.print(table)
        for agent, usage in result.per_agent.items():
            out.print(cell(f"  {agent}: {tokens(usage)}", one_line=True))
        out.print(f"  total: {tokens(result.usage)}")
    ok = all(r.status is RunStatus.FINISHED for r in result.results)
    if not ok:
        print("agentls: some runs did not finish (see the table)", file=sys.stderr)
    return 0 if ok else 1
