"""`agentls serve` whose audit trail refuses writes once the server has opened it, the way a
folder remounted read-only (or a full disk) leaves it: the engine builds, then a run cannot be
audited.

The tests run as any user (root ignores file modes), so the store's own SQLite connection is put
in the state a read-only file leaves it in, as tests/test_faults_audit.py does in-process.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.test_faults_audit import make_read_only

from agentls.cli import main
from agentls.core.audit import AuditStore

_recover = AuditStore.recover_interrupted


def _recover_then_refuse_writes(self: AuditStore) -> list[str]:
    recovered = _recover(self)
    make_read_only(self)
    return recovered


AuditStore.recover_interrupted = _recover_then_refuse_writes  # type: ignore[method-assign]

sys.exit(main(["serve"]))
