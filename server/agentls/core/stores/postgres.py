"""Connections to a team's PostgreSQL database, and its failures said in one sentence each.

The database is named by a libpq URL or key=value string (`AGENTLS_DATABASE_URL`, the setting
`databaseUrl`, `--database-url`). Its password never appears in a message, log line or audit
event: everything agentls says about the database names it by `shown_url`, which drops the
password, and error texts from libpq are scrubbed of it too (libpq echoes a connection string it
cannot parse). Passwords belong in `PGPASSWORD` or `~/.pgpass`, which libpq reads itself.

psycopg is imported only when a database is used, so a single user's agentls never loads it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from agentls.core.stores.db_errors import DatabaseError, DatabaseRefused, DatabaseUnavailable
from agentls.core.stores.pg_backoff import BACKOFF

if TYPE_CHECKING:
    import psycopg

DATABASE_URL_ENV = "AGENTLS_DATABASE_URL"
# The schema every agentls object lives in, and the two roles `agentls db init` grants to.
SCHEMA = "agentls"
MEMBER_ROLE = "agentls_member"
ADMIN_ROLE = "agentls_admin"

# Connection defaults a URL may override: fail fast when the server is away, notice a dead
# peer, and never hold the ledger's lock for long from a stalled process.
_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "application_name": "agentls",
}
_SESSION = "-c idle_in_transaction_session_timeout=30000 -c lock_timeout=30000"
# A connection idle this long is checked before a transaction (the server may have restarted).
_IDLE_CHECK_S = 1.0

_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "could not translate host name",
    "failed to resolve host",
    "no route to host",
    "network is unreachable",
    "server closed the connection",
    "connection is lost",
    "connection is closed",
    "terminating connection",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery",
    "consuming input failed",
    "sending query failed",
    "connection timed out",
    "connection reset",
    "broken pipe",
    "no connection to the server",
    "is the server running",
)


def shown_url(url: str) -> str:
    """The database as agentls names it in messages: the URL without its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:
        return _scrub_text(url, None)
    user = parts.get("user")
    host = parts.get("host") or "localhost"
    port = parts.get("port")
    where = f"{user}@{host}" if user else str(host)
    if port:
        where += f":{port}"
    return f"postgresql://{where}/{parts.get('dbname') or ''}"


def _password(url: str) -> str | None:
    try:
        from psycopg.conninfo import conninfo_to_dict

        value = conninfo_to_dict(url).get("password")
    except Exception:
        return None
    return str(value) if value else None


def _scrub_text(text: str, password: str | None) -> str:
    """`text` with any password in it replaced by ***."""
    if password:
        text = text.replace(password, "***")
    text = re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text, flags=re.I)


def scrub(text: str, url: str) -> str:
    """An error text about `url` with its password removed, wherever it appears."""
    return _scrub_text(text, _password(url))


def database_url_setting(url: str | None) -> str | None:
    """A `databaseUrl` setting, refused when it holds a password: settings files get committed
    and shown, so the password belongs in PGPASSWORD or ~/.pgpass, which libpq reads itself."""
    if url is None or not url.strip():
        return None
    if _password(url) is not None:
        raise ValueError(
            f"{shown_url(url)} with a password: keep the password in PGPASSWORD or ~/.pgpass "
            "and give the URL without it"
        )
    return url.strip()


def connection_kwargs(url: str) -> dict[str, Any]:
    """libpq options: agentls' defaults under what the URL itself says."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
    except Exception as exc:
        raise DatabaseRefused(
            shown_url(url),
            f"is not a valid libpq URL ({scrub(str(exc), url)})",
            "give it as postgresql://USER@HOST[:PORT]/DBNAME (the password in PGPASSWORD or "
            "~/.pgpass)",
        ) from None
    extra: dict[str, Any] = {k: v for k, v in _DEFAULTS.items() if k not in given}
    options = str(given.get("options") or "")
    extra["options"] = f"{options} {_SESSION}".strip()
    return extra


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A connection to the team database, or a DatabaseError that says why not.

    While a connect to `url` that timed out is recent, refused at once (stores/pg_backoff.py)."""
    import psycopg

    kwargs = connection_kwargs(url)
    if (refusal := BACKOFF.refusal(url)) is not None:
        raise refusal
    began = time.monotonic()
    try:
        conn = psycopg.connect(url, autocommit=autocommit, prepare_threshold=2, **kwargs)
    except psycopg.Error as exc:
        error = database_error(url, exc)
        if isinstance(error, DatabaseUnavailable):
            error = BACKOFF.failed(url, error, time.monotonic() - began)
        raise error from None
    BACKOFF.succeeded(url)
    return conn


def unreachable(exc: BaseException) -> bool:
    """Is this the server or the network being away (as opposed to a refusal)?"""
    import psycopg

    if isinstance(exc, (psycopg.errors.AdminShutdown, psycopg.errors.CannotConnectNow)):
        return True
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) in (
        None,
        "08000",
        "08001",
        "08003",
        "08004",
        "08006",
        "57P01",
        "57P02",
        "57P03",
    ):
        text = str(exc).lower()
        return any(marker in text for marker in _UNREACHABLE) or not text.strip()
    return bool(isinstance(exc, (psycopg.InterfaceError, OSError)))


_ADMINS_MAY = f"only members of {ADMIN_ROLE} may; ask an admin of the team database"


def database_error(
    url: str, exc: BaseException, *, doing: str = "", who_may: str = _ADMINS_MAY
) -> DatabaseError:
    """The DatabaseError, in one sentence, for what psycopg raised (`who_may`: what a refusal
    of `doing` for want of privileges says to do)."""
    import psycopg

    where = shown_url(url)
    text = scrub(_essence(exc), url)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        user = _user(url)
        return DatabaseRefused(
            where,
            f"refused the login of user '{user}' ({text})",
            "check the password in PGPASSWORD or ~/.pgpass (never in the URL of a settings file)",
        )
    if unreachable(exc):
        return DatabaseUnavailable(
            where,
            f"is unreachable ({text})",
            "no new model calls are made until it is back (check the server and the network)",
        )
    if "does not exist" in lowered and "database" in lowered:
        return DatabaseRefused(
            where,
            f"does not exist ({text})",
            "create it (createdb), then run `agentls --database-url URL db init` as its owner",
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return DatabaseRefused(
            where,
            f"refused to let user '{_user(url)}' {doing or 'do that'} ({text})",
            who_may,
        )
    if isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName)):
        return missing_schema(url)
    return DatabaseRefused(where, f"failed ({text})", "run `agentls db init` to check it")


def _essence(exc: BaseException) -> str:
    """The server's own words, without libpq's "connection to server at ... failed:" prefix."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    text = text.splitlines()[0]
    text = text.rsplit(" failed: ", 1)[-1]
    return re.sub(r"^(FATAL|ERROR):\s+", "", text)


def missing_schema(url: str) -> DatabaseRefused:
    return DatabaseRefused(
        shown_url(url),
        "has no agentls schema",
        "an admin creates it with `agentls --database-url URL db init`",
    )


def _user(url: str) -> str:
    try:
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(url).get("user") or "") or _default_user()
    except Exception:
        return _default_user()


def _default_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "?"


class Session:
    """One connection behind a lock, opened on first use and again after it broke (or a fork).

    Every failure comes out as a DatabaseError; a connection that failed is dropped, so the
    next use connects again (the server may be back).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = shown_url(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = 0
        self._used = 0.0  # when the connection was last used (time.monotonic)

    def _connection(self) -> psycopg.Connection[Any]:
        import os

        if self._conn is not None and (self._conn.closed or self._pid != os.getpid()):
            self._conn = None
        if self._conn is None:
            self._conn = connect(self.url)
            self._pid = os.getpid()
        return self._conn

    @contextmanager
    def transaction(self, *, doing: str = "") -> Iterator[psycopg.Connection[Any]]:
        """A transaction on the session's connection; errors become DatabaseErrors.

        It runs in pipeline mode: statements whose results are not read (BEGIN, writes, COMMIT)
        go out together, so a transaction costs a round trip to the server per result read plus
        one, not one per statement. A connection that sat idle is checked first, and replaced
        once if it went stale (the server restarted), so a server that is back is used at once.
        """
        import psycopg

        with self._lock:
            conn = self._ready(doing)
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    yield conn
                    conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(Exception):
                    conn.execute("ROLLBACK")
                if isinstance(exc, psycopg.Error):
                    raise self._failed(conn, exc, doing) from None
                raise
            finally:
                self._used = time.monotonic()

    def _ready(self, doing: str) -> psycopg.Connection[Any]:
        """The connection, checked with a round trip when it has been idle a while."""
        import psycopg

        while True:
            fresh = self._conn is None
            conn = self._connection()
            if fresh or time.monotonic() - self._used < _IDLE_CHECK_S:
                return conn
            try:
                conn.execute("SELECT 1").fetchone()
                return conn
            except psycopg.Error as exc:
                self._drop()
                if not unreachable(exc):
                    raise database_error(self.url, exc, doing=doing) from None

    def _failed(self, conn: Any, exc: BaseException, doing: str) -> DatabaseError:
        if unreachable(exc) or conn.closed or conn.broken:
            self._drop()
        return database_error(self.url, exc, doing=doing)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
