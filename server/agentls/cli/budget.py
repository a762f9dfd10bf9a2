"""`agentls budget`: show the workspace's (or team's) budget, set a limit, or reset the usage.

agentls budget                       used / limit / remaining: in total, per agent, and the
                                     limits per user, per period and in dollars
agentls budget set N [--agent NAME | --user NAME] [--per day|week|month]
                                     a limit in tokens (20000, 20_000, 20k, 1.5M), in dollars
                                     ('$50'), or `none`
agentls budget reset [--agent NAME]  zero the committed usage (limits stay)
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import TYPE_CHECKING

from agentls.cli import CliError, workspace_of
from agentls.cli.common import team_database_url
from agentls.cli.fit import fit_columns

if TYPE_CHECKING:
    from agentls.core.budget import BudgetScopeSnapshot, BudgetSnapshot, TokenBudgeter
    from agentls.core.budget_set import LimitChanges
    from agentls.core.budget_snapshots import LimitSnapshot

# A scope's name folds onto more lines rather than get narrower than this.
_SCOPE_WIDTH = 16


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "budget",
        help="show, set or reset the token budget",
        description="Token budget of the workspace: the total and per-agent limits.",
    )
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    actions = parser.add_subparsers(dest="budget_action", metavar="ACTION")
    set_parser = actions.add_parser("set", help="set the total limit, or one agent's")
    set_parser.add_argument(
        "limit",
        metavar="N",
        help="tokens (e.g. 200000, 200k, 1.5M), dollars ('$50', quoted), or 'none' for unlimited",
    )
    set_parser.add_argument("--agent", metavar="NAME", help="limit this agent instead of the total")
    set_parser.add_argument(
        "--user",
        metavar="NAME",
        help="limit this user (AGENTLS_USER, else the login name) instead of the total",
    )
    set_parser.add_argument(
        "--per",
        choices=("day", "week", "month"),
        help="a limit for each day, week or month (UTC), starting over with the next",
    )
    reset_parser = actions.add_parser("reset", help="zero the used tokens (limits stay)")
    reset_parser.add_argument("--agent", metavar="NAME", help="reset only this agent")
    for p in (set_parser, reset_parser):
        p.add_argument(
            "--allow-unknown-agent",
            action="store_true",
            help="accept an --agent name that no definition has (yet)",
        )
    for p in (parser, set_parser, reset_parser):
        p.set_defaults(func=run)


def parse_limit(text: str) -> int | None:
    """`budget set N` (core/limits.py: the one parser of token limits)."""
    from agentls.core.limits import parse_token_limit

    try:
        return parse_token_limit(text)
    except ValueError as exc:
        raise CliError(f"budget set N: {exc}") from None


def check_agent(workspace: Path, agent: str, budgeter: TokenBudgeter) -> None:
    """Refuse a limit or reset for an agent nobody defined (a typo would limit nothing)."""
    from agentls.core.engine import EngineSettings, load_registry

    known = set(load_registry(workspace, EngineSettings()).names())
    known.update(budgeter.snapshot().agents)  # agents with spend or a limit in the ledger
    if agent in known:
        return
    close = difflib.get_close_matches(agent, sorted(known), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise CliError(
        f"--agent {agent!r}: no agent of that name in this workspace; {hint}"
        "pass --allow-unknown-agent to set it anyway (e.g. for an agent you will add later)"
    )


def run(args: argparse.Namespace) -> int:
    from agentls.core.budget import TokenBudgeter
    from agentls.core.budget_set import set_limits

    workspace = workspace_of(args)
    action = getattr(args, "budget_action", None)
    agent = getattr(args, "agent", None)
    if agent is not None and not agent.strip():
        raise CliError("--agent: the agent name is empty")
    keys = limit_keys(args) if action == "set" else None
    budgeter = TokenBudgeter.for_workspace(workspace, database_url=team_database_url(args))
    try:
        if agent is not None and not getattr(args, "allow_unknown_agent", False):
            check_agent(workspace, agent, budgeter)
        if keys is not None:
            message = set_limits(budgeter, keys)  # core/budget_set.py
        elif action == "reset":
            budgeter.reset(agent=agent)
            message = f"usage of agent '{agent}' reset" if agent else "usage reset (all agents)"
        else:
            message = None
        snapshot = budgeter.snapshot()
    finally:
        budgeter.close()
    if getattr(args, "json", False):
        from agentls.cli.visible import json_visible

        print(json_visible(snapshot.model_dump_json(indent=2)))
        return 0
    _print(snapshot, message)
    return 0


def limit_keys(args: argparse.Namespace) -> LimitChanges:
    """The limits `budget set` changes (core/budget_set.py, as the editors' `agentls.budget`)."""
    from agentls.core.budget_set import LimitError, limit_changes

    if args.limit.strip() == "$":
        raise CliError(
            "budget set: quote a dollar limit so the shell leaves the $ alone: "
            "agentls budget set '$50'"
        )
    if args.agent is not None and args.user is not None:
        raise CliError("budget set: --agent and --user name different limits; give one of them")
    try:
        return limit_changes(args.limit, agent=args.agent, user=args.user, per=args.per)
    except LimitError as exc:
        where = "budget set N" if exc.argument == "limit" else f"--{exc.argument}"
        raise CliError(f"{where}: {exc}") from None


def _print(snapshot: BudgetSnapshot, message: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from agentls.cli.visible import cell

    # Agent names in the ledger came from runs and definitions: Text cells, never markup.
    console = Console(emoji=False)
    if message:
        console.print(cell(message, one_line=True))
    rows = [("total", _cells(snapshot))]
    rows += [(f"agent {name}", _cells(scope)) for name, scope in snapshot.agents.items()]
    rows += [(_limit_name(limit), _limit_cells(limit)) for limit in snapshot.limits]
    # "held": reserved by model calls in flight; the parts: input / cached input / output.
    headers = ("used", "limit", "remaining", "held", "in/cached/out")
    columns = {h: [h, *(cells[i] for _, cells in rows)] for i, h in enumerate(headers)}
    # Numbers are never cut short: a narrow terminal folds the scope names (never narrower
    # than _SCOPE_WIDTH); on a very narrow one, the usage's parts, what is held and what remains
    # go first.
    scope_width = min(_SCOPE_WIDTH, max(len(name) for name, _ in rows))
    shown = fit_columns(
        console.width, scope_width + 3, columns, ("in/cached/out", "held", "remaining")
    )
    table = Table(title="budget" if snapshot.limits else "token budget")
    table.add_column("scope", overflow="fold", min_width=scope_width)
    for header in shown:
        widest = max(map(len, columns[header]))
        table.add_column(header, justify="right", no_wrap=True, min_width=widest)
    for n, (name, cells) in enumerate(rows):
        figures = [cells[headers.index(h)] for h in shown]
        table.add_row(cell(name, one_line=True), *figures, end_section=n == 0 and len(rows) > 1)
    console.print(table)
    if snapshot.usage.estimated or any(a.usage.estimated for a in snapshot.agents.values()):
        console.print(
            "~ includes counts estimated by the tokenizer where the provider reported none"
        )


def _cells(scope: BudgetScopeSnapshot | BudgetSnapshot) -> list[str]:
    mark = "~" if scope.usage.estimated else ""
    return [
        f"{mark}{scope.used:,}",
        "unlimited" if scope.limit is None else f"{scope.limit:,}",
        "—" if scope.remaining is None else f"{scope.remaining:,}",
        f"{scope.reserved:,}",
        f"{scope.usage.input_tokens:,}/{scope.usage.cached_input_tokens:,}"
        f"/{scope.usage.output_tokens:,}",
    ]


def _limit_name(limit: LimitSnapshot) -> str:
    who = limit.applies_to if limit.name is None else f"{limit.applies_to} {limit.name}"
    unit = " ($)" if limit.unit == "usd" else ""
    return f"{who}{unit}" + (f" · {limit.period} {limit.window}" if limit.period else "")


def _limit_cells(limit: LimitSnapshot) -> list[str]:
    from agentls.core.pricing import format_usd

    def shown(value: float) -> str:
        return format_usd(value) if limit.unit == "usd" else f"{int(value):,}"

    return [
        shown(limit.used),
        shown(limit.limit),
        shown(limit.remaining),
        shown(limit.reserved),
        "",
    ]
