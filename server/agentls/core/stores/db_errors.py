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


class DatabaseRefused(DatabaseError):
    """The database answered but refused what was asked (login, privileges, schema)."""


__all__ = ["DatabaseError", "DatabaseRefused", "DatabaseUnavailable"]
