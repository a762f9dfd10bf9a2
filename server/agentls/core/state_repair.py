"""`agentls doctor --repair`: unusable state moved aside and recreated empty.

Apart from state_check.py, which the stores import to name their errors: this module imports the
stores to recreate their files, so the two would otherwise import each other.
"""

from __future__ import annotations

from pathlib import Path

from agentls.core.sqlite import state_dir
from agentls.core.state_check import (
    DATABASES,
    LEDGER,
    STATE_DIR,
    Repair,
    StateError,
    check_state_folder,
    integrity,
    move_aside,
    repair_ledger_values,
    temp_databases,
)
from agentls.core.stores.select import AUDIT_FILE
from agentls.core.stores.sqlite_audit import SqliteAudit
from agentls.core.stores.sqlite_ledger import SqliteLedgerStore


def repair(root: Path) -> list[Repair]:
    """Move every unusable state file aside (kept, never deleted) and recreate it empty; remove
    the temporary database files of processes that were killed while creating one."""
    repairs: list[Repair] = []
    state = Path(root) / STATE_DIR
    try:
        check_state_folder(root)
    except StateError as exc:
        repairs.append(Repair(state, move_aside(state), exc.problem))
    for name in DATABASES:
        path = state / name
        problem = integrity(path)
        if problem is not None:
            repairs.append(Repair(path, move_aside(path), problem))
        elif name == LEDGER and path.exists() and (fixed := repair_ledger_values(path)):
            repairs.append(fixed)
    for temp in temp_databases(root):
        if temp.abandoned:
            temp.path.unlink(missing_ok=True)
            repairs.append(
                Repair(temp.path, None, f"was left by process {temp.pid}, killed while creating it")
            )
    # Recreate what was moved (and the folder), so the next command starts clean: the local
    # files, whatever team database the environment names.
    state = state_dir(root)
    SqliteLedgerStore(state / LEDGER).close()
    SqliteAudit(state / AUDIT_FILE).close()
    return repairs
