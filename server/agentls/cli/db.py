"""`agentls db`: the team's PostgreSQL database (docs/team.md).

    agentls --database-url URL db init [--member NAME]... [--admin NAME]...
    agentls --database-url URL db status

`init` creates the agentls schema or migrates it to this agentls' version, creates the roles
agentls_member and agentls_admin with their grants, and grants them to the login roles named.
Run it as the database's owner (an admin). `status` says which schema version the database holds.
The database comes from `--database-url` or `AGENTLS_DATABASE_URL`; its password from PGPASSWORD
or ~/.pgpass, and it is never printed.
"""

from __future__ import annotations

import argparse
import os

from agentls.cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "db",
        help="set up the team's PostgreSQL database (init, status)",
        description="The team database that holds one budget and one audit trail for everyone "
        "(docs/team.md). The database is named by --database-url or AGENTLS_DATABASE_URL.",
    )
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="create or migrate the agentls schema and its two roles' grants",
        description="Create the agentls schema (or migrate it to this version), the roles "
        "agentls_member and agentls_admin and their grants. Run as the database's owner.",
    )
    init.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="NAME",
        help="grant agentls_member to this login role (may repeat): reserve, commit, append, read",
    )
    init.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="NAME",
        help="grant agentls_admin to this login role (may repeat): also change limits and prune",
    )
    init.set_defaults(func=run_init)
    status = actions.add_parser("status", help="show the schema version the database holds")
    status.set_defaults(func=run_status)


def _url() -> str:
    from agentls.core.stores.postgres import DATABASE_URL_ENV

    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        raise CliError(
            "no team database given: pass --database-url URL (before the command) or set "
            f"{DATABASE_URL_ENV}"
        )
    return url


def run_init(args: argparse.Namespace) -> int:
    from agentls.core.stores.pg_schema import SCHEMA_VERSION, init_database
    from agentls.core.stores.postgres import shown_url

    url = _url()
    report = init_database(url, members=args.member, admins=args.admin)
    where = shown_url(url)
    if report.before == report.after:
        print(f"{where}: agentls schema version {SCHEMA_VERSION} is up to date")
    elif report.before == 0:
        print(f"{where}: created agentls schema version {SCHEMA_VERSION}")
    else:
        print(f"{where}: migrated agentls schema from version {report.before} to {report.after}")
    for role in report.roles_created:
        print(f"created role {role}")
    for user, role in report.granted:
        print(f"granted {role} to {user}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from agentls.core.stores.pg_schema import SCHEMA_VERSION, check_version
    from agentls.core.stores.postgres import Session, shown_url

    url = _url()
    session = Session(url)
    try:
        with session.transaction() as conn:
            check_version(url, conn)
    finally:
        session.close()
    print(f"{shown_url(url)}: agentls schema version {SCHEMA_VERSION}, ready")
    return 0
