"""`agentls acp`: an Agent Client Protocol agent on stdio, for the agent panels of Zed,
JetBrains, Neovim (CodeCompanion) and Emacs (agent-shell).
"""

from __future__ import annotations

import argparse

from agentls.cli.approvals import add_security_options
from agentls.cli.common import add_budget_options, add_model_options


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "acp",
        help="run as an Agent Client Protocol agent on stdio (Zed, JetBrains, Neovim, Emacs)",
        description="An ACP agent on stdio. Each session's workspace is the folder the editor "
        "opens it in (cwd); state lives in WORKSPACE/.agentls/, shared with the LSP and the CLI.",
    )
    parser.add_argument(
        "--default-agent",
        metavar="NAME",
        help="the agent a prompt without a /command goes to "
        "(default: orchestrator when defined, else explain)",
    )
    parser.add_argument(
        "--budget",
        type=str,
        metavar="N",
        help="total token limit of each workspace (e.g. 200000, 200k); default: the ledger's",
    )
    add_budget_options(parser)
    add_security_options(parser, confirm=False, asked="in the panel")
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentls.acp.server import serve
    from agentls.acp.turn import parse_limit
    from agentls.cli import CliError
    from agentls.cli.common import settings_from

    settings = settings_from(args)
    if args.budget is not None:
        try:
            limit = parse_limit(args.budget)
        except ValueError as exc:
            raise CliError(f"--budget: {exc}") from None
        if limit is None:
            raise CliError(
                f"--budget {args.budget}: give a number of tokens; to remove the limit use "
                "`agentls budget set none`"
            )
        settings.budget.total = limit
    serve(settings, default_agent=args.default_agent)
    return 0
