"""Which store a workspace's ledger and audit trail live in: a team's PostgreSQL database when one
is named, else the SQLite files in `<workspace>/.agentls/`.

The database is named by `AGENTLS_DATABASE_URL` (which `agentls --database-url` sets for itself
and every child it starts), else by the setting `databaseUrl`. Nothing falls back silently: a
named database that cannot be used is an error, never a switch to the local files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from agentls.core.sqlite import state_dir
from agentls.core.stores.postgres import DATABASE_URL_ENV

if TYPE_CHECKING:
    from agentls.core.stores.ledger import LedgerStore
    from agentls.core.stores.trail import AuditBackend

LEDGER_FILE = "ledger.db"
AUDIT_FILE = "audit.db"


def database_url(setting: str | None = None) -> str | None:
    """The team database to use: the environment's, else the setting's; None: the local files."""
    return os.environ.get(DATABASE_URL_ENV, "").strip() or (setting or "").strip() or None


def ledger_store(root: Path, setting: str | None = None) -> LedgerStore:
    """The workspace's ledger store."""
    state = state_dir(root)
    if (url := database_url(setting)) is not None:
        from agentls.core.stores.pg_ledger import PgLedgerStore

        return PgLedgerStore(url, state=state, workspace=root)
    from agentls.core.stores.sqlite_ledger import SqliteLedgerStore

    return SqliteLedgerStore(state / LEDGER_FILE)


def audit_backend(
    root: Path, setting: str | None = None, *, synchronous: str = "NORMAL"
) -> AuditBackend:
    """The workspace's audit backend."""
    state = state_dir(root)
    if (url := database_url(setting)) is not None:
        from agentls.core.stores.pg_audit import PgAudit

        return PgAudit(url, state=state, workspace=root, synchronous=synchronous)
    from agentls.core.stores.sqlite_audit import SqliteAudit

    return SqliteAudit(state / AUDIT_FILE, synchronous=synchronous)
