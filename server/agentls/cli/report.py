"""`agentls report`: spend in tokens and dollars from the audit trail, grouped, with bars.

    agentls report [--since 30d] [--by user|agent|model|workspace|day] [--json | --csv]

The model_call events since T (default: the last 30 days), grouped in the store (core/spend.py);
dearest first, days in order. A bar shows each group's share of the dollars (of the tokens when
no call had a price).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agentls.cli import workspace_of
from agentls.cli.common import team_database_url

if TYPE_CHECKING:
    from agentls.core.spend import Spend, SpendReport

BY = ("user", "agent", "model", "workspace", "day")
BAR_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉"
# A spreadsheet runs a cell that starts with one of these as a formula (a user name is anyone's).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_FIELDS = (
    "runs",
    "calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_calls",
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="spend in tokens and dollars per user, agent, model, workspace or day",
        description="Spend of the model calls in the audit trail, grouped, with bars.",
    )
    parser.add_argument(
        "--since",
        metavar="T",
        default="30d",
        help="calls from T on: an age such as 7d, 12h or an ISO-8601 time (default: 30d)",
    )
    parser.add_argument(
        "--by",
        choices=BY,
        default="user",
        help="group by user (default), agent, model, workspace or day (UTC)",
    )
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print the report as JSON")
    form.add_argument("--csv", action="store_true", help="print the report as CSV")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentls.cli.audit import parse_since
    from agentls.core.audit import AuditStore
    from agentls.core.spend import GroupBy, spend

    since = parse_since(args.since)
    store = AuditStore.for_workspace(workspace_of(args), database_url=team_database_url(args))
    try:
        store.recover_interrupted()
        report = spend(store, GroupBy(args.by), since)
    finally:
        store.close()
    if args.json:
        print(as_json(report))
    elif args.csv:
        sys.stdout.write(as_csv(report))
    else:
        _print(report)
    return 0


def as_json(report: SpendReport) -> str:
    from agentls.cli.visible import json_visible

    return json_visible(
        json.dumps(
            {
                "by": report.by.value,
                "since": report.since,
                "rows": [r.as_dict() for r in report.rows],
                "total": report.total.as_dict() | {"key": None},
            },
            indent=2,
        )
    )


def as_csv(report: SpendReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((report.by.value, *CSV_FIELDS))
    for row in report.rows:
        fields = row.as_dict() | {"cost_usd": _decimal(row.cost_usd)}
        writer.writerow((_csv_safe(row.key or ""), *(fields[f] for f in CSV_FIELDS)))
    return out.getvalue()


def _decimal(dollars: float) -> str:
    """0.000072, not 7.2e-05: what a spreadsheet reads as a number."""
    return f"{dollars:.12f}".rstrip("0").rstrip(".") or "0"


def _csv_safe(text: str) -> str:
    """OWASP's rule against CSV injection: a leading quote makes a formula plain text."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def bar(share: float) -> str:
    """A bar of `share` (0..1) of BAR_WIDTH characters, in eighths of a character."""
    eighths = round(max(0.0, min(1.0, share)) * BAR_WIDTH * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(BAR_WIDTH)


def _print(report: SpendReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from agentls.cli.visible import cell

    console = Console(emoji=False, highlight=False)
    since = (
        datetime.fromtimestamp(report.since, UTC).strftime("%Y-%m-%d %H:%M UTC")
        if report.since
        else "the start"
    )
    if not report.rows:
        console.print(f"no model calls since {since}")
        return
    whole = report.total
    by_cost = whole.cost_usd > 0

    def share(row: Spend) -> float:
        if by_cost:
            return row.cost_usd / whole.cost_usd
        return row.total_tokens / whole.total_tokens if whole.total_tokens else 0.0

    table = Table(title=f"spend by {report.by.value} since {since}")
    table.add_column(report.by.value, overflow="fold")
    for column in ("runs", "calls", "input", "cached", "output", "tokens", "dollars"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("share of " + ("dollars" if by_cost else "tokens"), no_wrap=True)
    for row in report.rows:
        name = cell(row.key if row.key is not None else "(not recorded)", one_line=True)
        table.add_row(name, *_numbers(row), bar(share(row)))
    if len(report.rows) > 1:
        table.add_section()
        table.add_row("all", *_numbers(whole), "")
    console.print(table)
    if whole.unpriced_calls:
        console.print(
            f"{whole.unpriced_calls:,} call{'' if whole.unpriced_calls == 1 else 's'} had no "
            "price: counted in tokens, not in dollars (give the model a price in the `prices` "
            "setting, see docs/pricing.md)"
        )


def _numbers(row: Spend) -> list[str]:
    return [
        f"{row.runs:,}",
        f"{row.calls:,}",
        f"{row.input_tokens:,}",
        f"{row.cached_input_tokens:,}",
        f"{row.output_tokens:,}",
        f"{row.total_tokens:,}",
        _dollars(row),
    ]


def _dollars(row: Spend) -> str:
    """The priced calls' dollars; `+ ?` when some calls had no price, `unknown` when none had."""
    from agentls.core.pricing import format_usd

    if row.unpriced_calls >= row.calls:
        return "unknown"
    return format_usd(row.cost_usd) + (" + ?" if row.unpriced_calls else "")
