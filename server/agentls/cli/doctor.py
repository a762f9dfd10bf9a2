"""`agentls doctor`: check the workspace's state folder and its team database; `--repair` moves
bad files aside.

    agentls doctor            check .agentls/ and its ledger and audit databases (read only)
    agentls doctor --repair   move each unusable file to <name>.corrupt-<UTC time>, start it anew

With a team database (`--database-url`, AGENTLS_DATABASE_URL or the `databaseUrl` setting) it also
checks that the database answers, holds this agentls' schema, takes this user as a member or an
admin, and whether this workspace's journals hold what was kept while it was away (`--repair`
applies them). The database is named without its password, always.

Nothing of the user's is deleted: a file moved aside keeps whatever history can still be read from
it. The one thing removed is a temporary database (`.<name>.db.new-<pid>-<hex>`) that a process
killed while creating the database left behind.
Exit status: 0 when everything is usable (or was repaired), 1 when a problem remains.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentls.cli import workspace_of
from agentls.cli.common import team_database_url


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check the workspace state (ledger, audit trail, team database); --repair fixes it",
        description="Check .agentls/: the folder, the budget ledger and the audit trail; and the "
        "team database when one is configured (reachable, schema, your role, pending journals).",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="move unusable files aside to <name>.corrupt-<time> (kept) and recreate them; "
        "remove temporary databases left by killed processes; apply journals kept while the "
        "team database was away",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentls.cli.visible import visible
    from agentls.core.state_check import StateError, diagnose
    from agentls.core.state_repair import repair

    root = workspace_of(args)
    if args.repair:
        try:
            repairs = repair(root)
        except (StateError, OSError) as exc:
            print(f"agentls doctor: repair failed: {visible(str(exc))}")
            return 1
        for r in repairs:
            # File names under .agentls/ may come with a repository: shown, never obeyed.
            path, kept = visible(str(r.path), one_line=True), visible(str(r.kept), one_line=True)
            if r.kept is None:
                print(f"removed {path}: a temporary database that {visible(r.problem)}")
            else:
                print(f"repaired {path}: it {visible(r.problem)}; the old file is kept as {kept}")
        if not repairs:
            print("nothing to repair")
    problems = 0
    for finding in diagnose(root):
        mark = "ok " if finding.ok else "BAD"
        print(f"{mark} {visible(str(finding.path), one_line=True)}: {visible(finding.message)}")
        problems += not finding.ok
    problems += _check_team(args, root)
    return 1 if problems else 0


def _check_team(args: argparse.Namespace, root: Path) -> int:
    """Print the team database's findings; return how many are problems."""
    from agentls.cli.visible import visible
    from agentls.core.sqlite import state_dir
    from agentls.core.state_check import StateError
    from agentls.core.stores.pg_doctor import check_team_database, replay_journals
    from agentls.core.stores.postgres import scrub

    url = team_database_url(args)
    if url is None:
        return 0
    state = state_dir(root)
    if args.repair:
        try:
            if applied := replay_journals(url, root, state):
                print(f"repaired: applied {applied} journal entr{'y' if applied == 1 else 'ies'}"
                      " kept while the team database was away")  # fmt: skip
        except (StateError, OSError) as exc:
            print(f"agentls doctor: repair failed: {visible(scrub(str(exc), url))}")
    problems = 0
    for finding in check_team_database(url, state):
        mark = "ok " if finding.ok else "BAD"
        print(f"{mark} {visible(scrub(finding.message, url))}")
        problems += not finding.ok
    return problems
