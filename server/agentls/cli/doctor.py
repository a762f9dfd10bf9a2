"""`agentls doctor`: check the workspace's state folder; `--repair` moves bad files aside.

    agentls doctor            check .agentls/ and its ledger and audit databases (read only)
    agentls doctor --repair   move each unusable file to <name>.corrupt-<UTC time>, start it anew

Nothing of the user's is deleted: a file moved aside keeps whatever history can still be read from
it. The one thing removed is a temporary database (`.<name>.db.new-<pid>-<hex>`) that a process
killed while creating the database left behind.
Exit status: 0 when everything is usable (or was repaired), 1 when a problem remains.
"""

from __future__ import annotations

import argparse

from agentls.cli import workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check the workspace state (ledger, audit trail); --repair fixes it",
        description="Check .agentls/: the folder, the budget ledger and the audit trail.",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="move unusable files aside to <name>.corrupt-<time> (kept) and recreate them; "
        "remove temporary databases left by killed processes",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentls.core.state_check import StateError, diagnose, repair

    root = workspace_of(args)
    if args.repair:
        try:
            repairs = repair(root)
        except (StateError, OSError) as exc:
            print(f"agentls doctor: repair failed: {exc}")
            return 1
        for r in repairs:
            if r.kept is None:
                print(f"removed {r.path}: a temporary database that {r.problem}")
            else:
                print(f"repaired {r.path}: it {r.problem}; the old file is kept as {r.kept}")
        if not repairs:
            print("nothing to repair")
    problems = 0
    for finding in diagnose(root):
        mark = "ok " if finding.ok else "BAD"
        print(f"{mark} {finding.path}: {finding.message}")
        problems += not finding.ok
    return 1 if problems else 0
