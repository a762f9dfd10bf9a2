"""What `agentls doctor` checks of a team database: that it answers, holds the schema of this
agentls, lets this user in as a member or an admin, and whether this workspace's journals hold
what was kept while it was away. Each finding is one sentence naming the database without its
password, and saying what to do when something is wrong.

Read only: nothing is written unless `replay_journals` is called (`agentls doctor --repair`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentls.core.state_check import StateError
from agentls.core.stores.journal import journal_path
from agentls.core.stores.pg_schema import SCHEMA_VERSION, check_version
from agentls.core.stores.postgres import (
    ADMIN_ROLE,
    MEMBER_ROLE,
    DatabaseError,
    Session,
    scrub,
    shown_url,
)

JOURNALS = ("ledger.journal", "audit.journal")


@dataclass(frozen=True)
class TeamFinding:
    ok: bool
    message: str


def check_team_database(url: str, state: Path) -> list[TeamFinding]:
    """The findings, in order; the checks that need the database stop at the first that fails."""
    found = _check_server(url)
    return found + [_check_journal(state, name) for name in JOURNALS]


def _check_server(url: str) -> list[TeamFinding]:
    where = shown_url(url)
    session = Session(url)
    found: list[TeamFinding] = []
    try:
        with session.transaction() as conn:
            (version,) = conn.execute("SHOW server_version").fetchone() or ("?",)
            found.append(TeamFinding(True, f"the team database {where} answers (PostgreSQL "
                                           f"{scrub(str(version), url)})"))  # fmt: skip
            # The role first: without one, the schema is out of sight too.
            if (rights := _rights(conn, where)) is not None:
                found.append(rights)
                if not rights.ok:
                    return found
            check_version(url, conn)
            found.append(
                TeamFinding(
                    True,
                    f"the team database {where} holds agentls schema version {SCHEMA_VERSION}, "
                    "the version of this agentls",
                )
            )
    except (DatabaseError, StateError) as exc:
        found.append(TeamFinding(False, str(exc)))
    finally:
        session.close()
    return found


def _rights(conn: Any, where: str) -> TeamFinding | None:
    """The user's role; None when the roles do not exist yet (`db init` creates them)."""
    (roles,) = conn.execute(
        "SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)", (ADMIN_ROLE, MEMBER_ROLE)
    ).fetchone()
    if roles < 2:
        return None
    user, admin, member = conn.execute(
        "SELECT current_user, pg_has_role(current_user, %s, 'MEMBER'), "
        "pg_has_role(current_user, %s, 'MEMBER')",
        (ADMIN_ROLE, MEMBER_ROLE),
    ).fetchone()
    if admin:
        return TeamFinding(
            True,
            f"user '{user}' is an admin of the team database {where} ({ADMIN_ROLE}): may run "
            "agents, read the trail, change limits and prune",
        )
    if member:
        return TeamFinding(
            True,
            f"user '{user}' is a member of the team database {where} ({MEMBER_ROLE}): may run "
            "agents and read the trail; limits and pruning are an admin's",
        )
    return TeamFinding(
        False,
        f"user '{user}' is neither {MEMBER_ROLE} nor {ADMIN_ROLE} in the team database {where}, "
        "so it refuses this user's model calls; an admin grants it with `agentls --database-url "
        f"URL db init --member {user}`",
    )


def _check_journal(state: Path, name: str) -> TeamFinding:
    path = journal_path(state, name)
    entries = pending_entries(path)
    what = "calls' usage" if name.startswith("ledger") else "audit events"
    if not entries:
        return TeamFinding(True, f"no {what} wait for the team database in {path}")
    return TeamFinding(
        False,
        f"{entries} entr{'y' if entries == 1 else 'ies'} of {what} kept while the team database "
        f"was away wait in {path}; `agentls doctor --repair` (or any command that reaches the "
        "database) applies them, each once",
    )


def pending_entries(path: Path) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def replay_journals(url: str, root: Path, state: Path) -> int:
    """Apply this workspace's journals to the database (opening its stores does); return how
    many entries were waiting."""
    from agentls.core.stores.pg_audit import PgAudit
    from agentls.core.stores.pg_ledger import PgLedgerStore

    waiting = sum(pending_entries(journal_path(state, name)) for name in JOURNALS)
    if waiting:
        PgLedgerStore(url, state=state, workspace=root).close()
        PgAudit(url, state=state, workspace=root).close()
    return waiting
