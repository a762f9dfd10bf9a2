"""Storage behind narrow interfaces: the budget ledger and the audit trail, each a small protocol
(ledger.py, trail.py) with two backends, SQLite files in `.agentls/` (the default) and a team's
PostgreSQL database. The policy above them (core/budget.py, core/audit.py) knows no SQL."""
