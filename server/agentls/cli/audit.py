"""`agentls audit`: the workspace's audit trail as a table with per-agent totals, or as JSONL.

    agentls audit [--run ID] [--agent NAME] [--user NAME] [--workspace W] [--since T] [--limit N]
                  [--json]
    agentls audit prune --before T


`--run` takes a full run id or a unique prefix of one, and shows the runs it delegated too (child
agentls runs, at every depth); `--since` an ISO-8601 time or an age such as 30m, 2h, 1d. `--user`
and `--workspace` keep the events of one user (`alice` or `alice@laptop`) and one workspace (its
remote URL, its end such as `acme/shop`, or a folder name). Runs whose process died are first
closed as interrupted. `prune` removes the finished runs whose last event is older than T (same
forms), so the store cannot grow without bound.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, TextIO, cast

from agentls.cli import CliError, workspace_of
from agentls.cli.common import team_database_url
from agentls.cli.fit import fit_columns, used

if TYPE_CHECKING:
    from rich.text import Text

    from agentls.core.audit import AuditStore
    from agentls.core.events import RunEvent, Usage

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# SQLite integers are 64-bit; no trail holds more events than this.
MAX_EVENTS = 10**15
_LAST = 253402300799.0  # 9999-12-31T23:59:59Z
# An agent's or event's name folds onto more lines rather than get narrower than this.
_NAME_WIDTH = 16
# The details get at least this many characters a line (they wrap onto as many lines as needed).
_DETAIL_MIN = 20
_STATUS_STYLE = {
    "finished": "green",
    "failed": "red",
    "cancelled": "yellow",
    "budget_exceeded": "magenta",
    "interrupted": "red",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "audit",
        help="show the audit trail and per-agent token totals",
        description="Every run event of this workspace: runs, model and tool calls, edits, errors.",
    )
    parser.add_argument(
        "--run", metavar="ID", help="one run and the runs it delegated (full id or unique prefix)"
    )
    parser.add_argument("--agent", metavar="NAME", help="only this agent's events")
    parser.add_argument(
        "--user", metavar="NAME", help="only this user's events (alice, or alice@host)"
    )
    parser.add_argument(
        "--workspace",
        dest="workspace_filter",
        metavar="W",
        help="only events of this workspace: its git remote (or the end of it, e.g. acme/shop) "
        "or its folder name",
    )
    parser.add_argument(
        "--since", metavar="T", help="events from T on: ISO-8601 (2025-01-31T09:00) or 30m/2h/1d"
    )
    parser.add_argument("--limit", metavar="N", help="only the latest N events")
    parser.add_argument("--json", action="store_true", help="print the events as JSON Lines")
    parser.set_defaults(func=run)
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION")
    prune = actions.add_parser(
        "prune",
        help="remove finished runs older than T",
        description="Remove every finished run whose last event is older than T; runs in flight stay.",
    )
    prune.add_argument(
        "--before",
        metavar="T",
        required=True,
        help="ISO-8601 time (2025-01-31T09:00) or an age such as 30d, 12h",
    )
    prune.set_defaults(func=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    from agentls.core.audit import AuditStore

    before = parse_since(args.before, option="--before")
    store = AuditStore.for_workspace(workspace_of(args), database_url=team_database_url(args))
    try:
        store.recover_interrupted()
        removed = store.prune(before=before)
    finally:
        store.close()
    print(f"removed {removed} audit event{'' if removed == 1 else 's'} older than {args.before}")
    return 0


def parse_since(text: str, now: float | None = None, *, option: str = "--since") -> float:
    """An ISO-8601 date/time (local time unless it names a zone) or an age like 30m, 2h, 1d."""
    value = text.strip()
    shown = text if len(text) <= 40 else text[:39] + "…"
    match = re.fullmatch(r"(\d{1,30}(?:\.\d{1,30})?)\s*([smhdw])", value.lower())
    now = time.time() if now is None else now
    if match:
        # An age older than the epoch means "everything": clamp instead of overflowing.
        return max(0.0, now - float(match.group(1)) * _UNITS[match.group(2)])
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"{option} {shown!r}: expected an ISO-8601 time (e.g. 2025-01-31 or 2025-01-31T09:00) "
            "or an age such as 45s, 30m, 2h, 1d, 1w"
        ) from None
    try:
        stamp = when.timestamp()  # naive values are local time
    except (OverflowError, OSError, ValueError):
        stamp = None
    if stamp is None or when.year < 1970 or stamp > _LAST:
        raise CliError(
            f"--since {shown!r}: expected a time from 1970-01-01 to 9999-12-31 (the audit trail "
            "holds nothing older than 1970)"
        )
    return max(stamp, 0.0)  # 1970-01-01 local time east of UTC is just before the epoch


def parse_limit(text: str | None) -> int | None:
    if text is None:
        return None
    shown = text if len(text) <= 40 else text[:39] + "…"
    try:
        number = int(text)
    except ValueError:
        raise CliError(f"--limit {shown!r}: expected a whole number of events") from None
    if not 0 < number <= MAX_EVENTS:
        raise CliError(f"--limit {shown!r}: expected a number from 1 to {MAX_EVENTS:,}")
    return number


def _resolve_run(store: AuditStore, run: str | None) -> str | None:
    if run is None:
        return None
    run = run.strip()
    matches = store.run_ids(run)
    if run in matches:
        return run
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(f"--run {run!r}: no run with that id in this workspace's audit trail")
    shown = ", ".join(m[:12] for m in matches[:5])
    raise CliError(f"--run {run!r}: matches {len(matches)} runs ({shown}...); give more of the id")


def run(args: argparse.Namespace) -> int:
    from agentls.core.audit import AuditStore

    since = parse_since(args.since) if args.since is not None else None
    limit = parse_limit(args.limit)
    store = AuditStore.for_workspace(workspace_of(args), database_url=team_database_url(args))
    try:
        store.recover_interrupted()
        run_id = _resolve_run(store, args.run)
        if args.user is not None or args.workspace_filter is not None:
            return _run_filtered(store, args, run_id, since, limit)
        if args.json:
            from agentls.cli.visible import JsonVisibleWriter

            store.export_jsonl(
                cast(TextIO, JsonVisibleWriter(sys.stdout)),
                run_id=run_id,
                agent=args.agent,
                since=since,
                limit=limit,
                descendants=True,
            )
            return 0
        events = store.query(
            run_id=run_id, agent=args.agent, since=since, limit=limit, descendants=True
        )
        totals = store.totals_by_agent(since=since)
        runs = store.runs(run_id=run_id, agent=args.agent, since=since, descendants=True)
    finally:
        store.close()
    if args.agent is not None:
        totals = {k: v for k, v in totals.items() if k == args.agent}
    if run_id is not None:
        totals = _run_totals(events)
    _print(events, totals, runs)
    return 0


def _run_filtered(
    store: AuditStore,
    args: argparse.Namespace,
    run_id: str | None,
    since: float | None,
    limit: int | None,
) -> int:
    """`--user`/`--workspace`, filtered in the store with the other filters."""
    from agentls.core.events import TERMINAL_KINDS, EventKind
    from agentls.core.stores.trail import EventQuery

    def query(kinds: set[EventKind] | None = None, last: int | None = None) -> EventQuery:
        return EventQuery(
            run_id=run_id,
            agent=args.agent,
            since=since,
            kinds=None if kinds is None else tuple(sorted(k.value for k in kinds)),
            limit=last,
            descendants=True,
            user=args.user,
            workspace=args.workspace_filter,
        )

    if args.json:
        from agentls.cli.visible import JsonVisibleWriter

        store.write_jsonl(cast(TextIO, JsonVisibleWriter(sys.stdout)), query(last=limit))
        return 0
    events = store.select(query(last=limit))
    # The totals count every matching call, not only the latest `limit` events.
    counted = store.select(query({EventKind.MODEL_CALL, *TERMINAL_KINDS}))
    _print(events, _run_totals(counted), [e for e in counted if e.is_terminal])
    return 0


def _run_totals(events: list[RunEvent]) -> dict[str, Usage]:
    """Per-agent totals of one run: its calls, or its closing usage when it recorded none."""
    from agentls.core.events import EventKind, Usage

    calls = [e for e in events if e.kind == EventKind.MODEL_CALL and "call_usage" in e.data]
    totals: dict[str, Usage] = {}
    if calls:
        for e in calls:
            totals[e.agent] = totals.get(e.agent, Usage()) + Usage.model_validate(
                e.data["call_usage"]
            )
    else:
        for e in events:
            if e.is_terminal:
                totals[e.agent] = totals.get(e.agent, Usage()) + e.usage
    return totals


def _event_row(e: RunEvent) -> tuple[str, str, str, str, str, str]:
    from agentls.core.events import EventKind

    when = datetime.fromtimestamp(e.time)
    stamp = when.strftime("%H:%M:%S" if when.date() == datetime.now().date() else "%m-%d %H:%M")
    detail = _detail(e)
    if e.duration_ms is not None:
        seconds = f"{e.duration_ms / 1000:.1f}s"
        detail = f"{detail} ({seconds})" if detail else seconds
    return (
        stamp,
        e.run_id[:8],
        ("  " * (e.depth - 1) + "└ " if e.depth else "") + e.agent,
        e.kind.value,
        _tokens(e.usage) if e.kind == EventKind.MODEL_CALL or e.is_terminal else "",
        detail,
    )


def _detail(event: RunEvent) -> str:
    from agentls.core.events import EventKind

    data = event.data
    if event.kind == EventKind.TOOL_CALL:
        name = data.get("tool") or data.get("name") or "tool"
        args = data.get("arguments") or data.get("summary") or ""
        call = f"{name}({args})"
        from agentls.core.tools.command import describe

        if phrase := describe(data):  # run_command: who allowed it, how it ended
            call += f" [{phrase}]"
        return f"{call} → {event.error}" if event.error else call
    if event.error:
        return event.error
    if event.kind == EventKind.STARTED:
        return event.goal
    if event.kind == EventKind.MODEL_CALL:
        parts = [str(data["model"])] if data.get("model") else []
        if "turn" in data:
            parts.append(f"turn {data['turn']}")
        used = data.get("call_usage")
        if isinstance(used, dict):
            parts.append(
                f"+{used.get('input_tokens', 0):,} in, {used.get('output_tokens', 0):,} out"
            )
        return ", ".join(parts)
    if event.kind.value.startswith("edit_"):
        path = data.get("path") or (event.artifacts[0].get("path") if event.artifacts else None)
        return str(path or data.get("summary") or "")
    if event.kind == EventKind.OUTPUT:
        return str(data.get("summary") or data.get("text") or "")[:200]
    return ""


def _print(events: list[RunEvent], totals: dict[str, Usage], runs: list[RunEvent]) -> None:
    from rich.console import Console
    from rich.table import Table

    from agentls.cli.visible import cell

    # Agents, goals, tool arguments, errors: what runs recorded is shown as Text (never markup)
    # with its control characters written out.
    console = Console(emoji=False)
    if not events:
        console.print("no audit events match")
    else:
        rows = [_event_row(e) for e in events]
        # Names are never squeezed out of sight, numbers never cut short: on a narrow terminal
        # the details wrap, and below _DETAIL_MIN characters of them the time and then the run
        # go instead.
        agent_w = min(_NAME_WIDTH, max(5, *(len(r[2]) for r in rows)))
        event_w = min(_NAME_WIDTH, max(5, *(len(r[3]) for r in rows)))
        tokens_w = max(6, *(len(r[4]) for r in rows))
        reserved = agent_w + event_w + tokens_w + _DETAIL_MIN + 4 * 3
        optional = {"time": ["time", *(r[0] for r in rows)], "run": ["run", *(r[1] for r in rows)]}
        shown = fit_columns(console.width, reserved, optional, ("time", "run"))
        # Still too narrow: the details get what is left.
        detail_w = max(8, _DETAIL_MIN - max(0, used(reserved, optional, shown) - console.width))
        table = Table(title=f"audit trail ({len(events)} events)")
        for column in shown:
            table.add_column(column, no_wrap=True)
        table.add_column("agent", overflow="fold", min_width=agent_w)
        table.add_column("event", overflow="fold", min_width=event_w)
        table.add_column("tokens", justify="right", no_wrap=True, min_width=tokens_w)
        table.add_column("detail", overflow="fold", min_width=detail_w)
        for e, row in zip(events, rows, strict=True):
            kind = cell(row[3], one_line=True, style=_STATUS_STYLE.get(e.kind.value, ""))
            where: list[Text | str] = [row[0]] if "time" in shown else []
            where += [cell(row[1], one_line=True)] if "run" in shown else []
            table.add_row(*where, cell(row[2], one_line=True), kind, row[4], cell(row[5]))
        console.print(table)
    if totals:
        runs_per_agent: dict[str, int] = {}
        for r in runs:
            runs_per_agent[r.agent] = runs_per_agent.get(r.agent, 0) + 1
        names: list[Text | str] = [cell(agent, one_line=True) for agent in totals]
        if len(totals) > 1:
            names.append("all agents")
        figures = [[str(runs_per_agent.get(a, 0)), *_usage_cells(u)] for a, u in totals.items()]
        if len(totals) > 1:
            from agentls.core.events import Usage

            grand = sum(totals.values(), Usage())
            figures.append([str(len(runs)), *_usage_cells(grand)])
        headers = ("runs", "input", "cached", "output", "reasoning", "total")
        columns = {h: [h, *(f[i] for f in figures)] for i, h in enumerate(headers)}
        agent_w = min(_NAME_WIDTH, max(len(n) for n in names))
        shown = fit_columns(
            console.width, agent_w + 3, columns, ("cached", "reasoning", "input", "output")
        )
        table = Table(title="tokens per agent")
        table.add_column("agent", overflow="fold", min_width=agent_w)
        for column in shown:
            table.add_column(column, justify="right", no_wrap=True)
        for i, name in enumerate(names):
            if i == len(totals):
                table.add_section()
            table.add_row(name, *(columns[c][i + 1] for c in shown))
        console.print(table)
        if any(u.estimated for u in totals.values()):
            console.print("~ estimated: the provider reported no usage; counted by the tokenizer")


def _tokens(usage: Usage) -> str:
    return f"{'~' if usage.estimated else ''}{usage.total:,}"


def _usage_cells(usage: Usage) -> list[str]:
    return [
        f"{usage.input_tokens:,}",
        f"{usage.cached_input_tokens:,}",
        f"{usage.output_tokens:,}",
        f"{usage.reasoning_tokens:,}",
        _tokens(usage),
    ]
