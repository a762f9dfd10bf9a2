"""The team database's failures, each one sentence: where (without the password), what went wrong,
and what to do. Their own module, so that what raises them (stores/postgres.py) and what
remembers them (stores/pg_backoff.py) need not import each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentls.core.state_check import StateError


class DatabaseError(StateError):
    """The team database cannot be used; the message names it (without its password) and says
    what to do."""

    def __init__(self, where: str, problem: str, hint: str) -> None:
        Exception.__init__(self, f"the team database {where} {problem}; {hint}")
        self.where = where
        self.path = Path(where)
        self.problem = problem
        self.hint = hint

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.where, self.problem, self.hint))


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached now (down, network gone): new model calls are refused."""


class NotDurable(DatabaseUnavailable):
    """A commit was made, but the server went away or restarted before it was known to be on its
    disk: it may be lost. The hint speaks of usage, which its caller keeps and commits again."""

    def lost(self, what: str) -> DatabaseUnavailable:
        """The same failure said of a change nobody keeps (a limit, a reset): it may be lost."""
        return DatabaseUnavailable(
            self.where,
            self.problem,
            f"{what} may be lost: once the database is back, check with `agentls budget` and "
            "make it again if it is not there",
        )


class DatabaseRefused(DatabaseError):
    """The database answered but refused what was asked (login, privileges, schema)."""


__all__ = ["DatabaseError", "DatabaseRefused", "DatabaseUnavailable", "NotDurable"]
