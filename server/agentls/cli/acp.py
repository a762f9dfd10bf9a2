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
        "opens it in (cwd); state lives in WORKSPACE/.agentls/, shared with the LSP and the CLI. "
        "A folder is trusted (its own agents, MCP servers and run_command are used) only when "
        'it lies in "trustedFolders" of ~/.config/agentls/settings.json.',
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
    parser.add_argument(
        "--trust",
        action="store_true",
        help="trust every folder a session opens, as if each were in trustedFolders "
        "(only for a panel you use on your own projects)",
    )
    add_budget_options(parser)
    add_security_options(parser, confirm=False, asked="in the panel")
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentls.acp.server import serve
    from agentls.acp.trust import TrustMode
    from agentls.acp.turn import parse_limit
    from agentls.cli import CliError
    from agentls.cli.common import settings_from

    if args.trust and args.untrusted:
        raise CliError("--trust and --untrusted contradict each other; give one of them")
    trust = (
        TrustMode.ALL if args.trust else TrustMode.NONE if args.untrusted else TrustMode.SETTINGS
    )
    # Each session's folder is trusted or not on its own (acp/trust.py), not the current one.
    # Each session's workspace is the panel's folder: only the user's own settings file applies.
    settings = settings_from(args, warn_untrusted=False, workspace_file=False)
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
    serve(settings, default_agent=args.default_agent, trust=trust)
    return 0
