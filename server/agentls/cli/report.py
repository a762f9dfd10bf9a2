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
from agentls.cli.fit import fit_columns, used

if TYPE_CHECKING:
    from agentls.core.spend import Spend, SpendReport

BY = ("user", "agent", "model", "workspace", "day")
BAR_WIDTH = 24
# The figures of each row, in the table's order (and `_numbers`').
_FIGURES = ("runs", "calls", "input", "cached", "output", "tokens", "dollars")
# Bars never get narrower than this (the names and figures come first).
_MIN_BAR = 6
# The figures left out first when a terminal is too narrow for them all.
_DROPPED_FIRST = ("cached", "input", "output", "calls", "runs")
# A name longer than this folds onto a second line rather than squeeze the figures.
_NAME_WIDTH = 32
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


def bar(share: float, width: int = BAR_WIDTH) -> str:
    """A bar of `share` (0..1) of `width` characters, in eighths of a character."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def _fit(
    console_width: int, name_width: int, columns: dict[str, list[str]]
) -> tuple[list[str], int]:
    """Which figure columns to show, and how wide the bars: on a narrow terminal the bars shrink
    first, then the least needed figures go, never the names."""
    reserved = name_width + 3 + _MIN_BAR + 3
    shown = fit_columns(console_width, reserved, columns, _DROPPED_FIRST)
    room = console_width - used(reserved - _MIN_BAR, columns, shown)
    return shown, max(_MIN_BAR, min(BAR_WIDTH, room))


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

    names = [
        cell(row.key if row.key is not None else "(not recorded)", one_line=True)
        for row in report.rows
    ]
    rows = [_numbers(row) for row in report.rows]
    if len(report.rows) > 1:
        rows.append(_numbers(whole))
    name_width = min(_NAME_WIDTH, max(len(report.by.value), *map(len, names)))
    columns = {h: [h, *(r[i] for r in rows)] for i, h in enumerate(_FIGURES)}
    shown, width = _fit(console.width, name_width, columns)
    table = Table(title=f"spend by {report.by.value} since {since}")
    table.add_column(report.by.value, overflow="fold", min_width=name_width)
    for column in shown:
        table.add_column(column, justify="right", no_wrap=True)
    of = "dollars" if by_cost else "tokens"
    table.add_column(f"share of {of}" if width >= len(f"share of {of}") else "share")
    for i, (name, row) in enumerate(zip(names, report.rows, strict=True)):
        table.add_row(name, *(columns[c][i + 1] for c in shown), bar(share(row), width))
    if len(report.rows) > 1:
        table.add_section()
        table.add_row("all", *(columns[c][-1] for c in shown), "")
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
