"""`agentls create PROMPT`: the model writes an agent from a sentence; run it at once, save it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agentls.cli import CliError, workspace_of
from agentls.cli.common import (
    add_budget_options,
    add_model_options,
    positive_int,
    settings_from,
    target_from,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("create", help="create an agent from a sentence (and run it)")
    parser.add_argument(
        "prompt", help="what the agent should be, e.g. 'a reviewer for SQL injection'"
    )
    parser.add_argument("--file", type=Path, help="a file to run the new agent on")
    parser.add_argument("--lines", help="line range A-B of --file")
    parser.add_argument("--goal", help="goal for the run (default: the prompt)")
    parser.add_argument("--save", action="store_true", help="save it to .agentls/agents/NAME.yaml")
    parser.add_argument("--no-run", action="store_true", help="only create (and save) the agent")
    parser.add_argument("--budget", type=positive_int, help="token budget per run")
    add_budget_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from agentls.cli.progress import TerminalProgress
    from agentls.cli.visible import visible
    from agentls.core.create import CreateAgentError, CreatedAgent, create_agent
    from agentls.core.engine import build_runtime
    from agentls.core.events import RunStatus
    from agentls.core.runtime import RunResult

    # Check every argument before the workspace's state is opened (or created).
    workspace = workspace_of(args)
    target = target_from(args, args.file, args.lines) if args.file else None
    runtime = build_runtime(workspace, settings_from(args))
    progress = TerminalProgress()
    runtime.subscribe(progress)

    async def go() -> tuple[CreatedAgent, RunResult | None]:
        try:
            created = await create_agent(
                runtime, args.prompt, selection=target, budget=args.budget, save=args.save
            )
            result: RunResult | None = None
            if not args.no_run:
                result = await runtime.delegate(
                    created.definition, args.goal or args.prompt, target, budget=args.budget
                )
            return created, result
        finally:
            await runtime.aclose()

    try:
        created, result = asyncio.run(go())
    except CreateAgentError as exc:
        raise CliError(str(exc)) from None
    except FileExistsError as exc:
        raise CliError(
            f"--save: {exc.filename} already exists; remove it or rename the agent"
        ) from None
    print("\n# the new agent")
    # The model wrote it: YAML quotes what it can, the rest is shown before it is printed.
    definition = created.definition.model_dump(mode="json", exclude_defaults=True)
    print(visible(yaml.safe_dump(definition, sort_keys=False)), end="")
    if created.saved_to:
        print(f"# saved to {visible(str(created.saved_to))}", file=sys.stderr)
    if result is not None and result.status is not RunStatus.FINISHED:
        return 1
    return 0
