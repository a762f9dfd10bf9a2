"""`agentls agents`: the registry, where each definition came from, and any errors."""

from __future__ import annotations

import argparse
import json

from agentls.cli import workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("agents", help="list the agents in effect and definition errors")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from agentls.cli.common import warn_if_untrusted
    from agentls.cli.visible import cell, json_visible, markup, visible
    from agentls.core.engine import EngineSettings, load_registry

    settings = EngineSettings(workspace_trusted=not args.untrusted)
    warn_if_untrusted(workspace_of(args), settings)
    registry = load_registry(workspace_of(args), settings)
    if args.json:
        listing = {
            "agents": [a.summary() for a in registry],
            "errors": [str(e) for e in registry.errors],
        }
        print(json_visible(json.dumps(listing, indent=2)))
        return 1 if registry.errors else 0
    # Names, descriptions and paths come from definition files a repository may ship: every
    # cell is a Text (no markup) with its control characters shown.
    console = Console(emoji=False)
    table = Table(title="agents")
    for column in ("name", "mode", "source", "description"):
        table.add_column(column)
    for a in registry:
        where = cell(a.source, one_line=True)
        if a.path and a.source != "builtin":
            where.append("\n" + visible(str(a.path), one_line=True))
        table.add_row(
            cell(a.definition.name, one_line=True),
            a.definition.mode.value,
            where,
            cell(a.definition.description),
        )
    console.print(table)
    for error in registry.errors:
        # One line each, never wrapped, so `path:line:column` stays clickable and greppable.
        console.print(f"[red]error[/red] {markup(error)}", highlight=False, soft_wrap=True)
    return 1 if registry.errors else 0
