"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's server binaries, `initdb` and
`pg_ctl` in a temporary folder, listening on 127.0.0.1 at a free port and on a socket in that
folder. `initdb` refuses to run as root (and CI runs as root), so as root the cluster belongs to
the `postgres` user and every server command runs through `runuser -u postgres`.

Connections over TCP need a password (scram-sha-256), so tests exercise what a team's server
does; the superuser `postgres` has the password `SUPERUSER_PASSWORD`. Each test gets a database
of its own (`new_database`) and login roles as it needs them (`login_role`).

    with PostgresCluster.start(tmp) as pg:
        url = pg.new_database("t1")                  # postgresql://postgres:...@127.0.0.1:P/t1
        pg.stop(); pg.restart()                      # faults: the server away and back

`python -m tests.rig.postgres` starts one and prints its superuser URL (for trying things by hand).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

SUPERUSER_PASSWORD = "pg-test-super"
_PG_ROOT = Path("/usr/lib/postgresql")


class PostgresMissing(RuntimeError):
    """The server binaries are not installed (scripts/setup-postgres.sh installs them)."""


def server_bin() -> Path:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        (p for p in _PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresMissing(
            "PostgreSQL server binaries not found under /usr/lib/postgresql "
            "(run scripts/setup-postgres.sh, which installs Debian's `postgresql` package)"
        )
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresCluster:
    """A running (or stopped) throwaway cluster; `stop()`/`restart()` for fault tests."""

    root: Path
    port: int
    bin: Path
    _as_postgres: bool = False
    _databases: int = field(default=0, repr=False)

    @classmethod
    def start(cls, root: Path | None = None) -> PostgresCluster:
        bin_dir = server_bin()
        base = Path(tempfile.mkdtemp(prefix="agentls-pg-", dir=root))
        as_postgres = os.geteuid() == 0
        cluster = cls(base, free_port(), bin_dir, as_postgres)
        if as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(base, entry.pw_uid, entry.pw_gid)
        (pwfile := base / "pwfile").write_text(SUPERUSER_PASSWORD + "\n")
        if as_postgres:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        cluster._run(
            "initdb", "-D", str(cluster.data), "-U", "postgres", "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        cluster.restart()
        return cluster

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            raise RuntimeError(f"{tool} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
        return out

    def restart(self) -> None:
        """Start the server (again): same data, same port."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate`: as if it crashed)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def url(
        self, database: str = "postgres", user: str = "postgres", password: str | None = None
    ) -> str:
        secret = SUPERUSER_PASSWORD if password is None and user == "postgres" else password
        auth = user if secret is None else f"{user}:{secret}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the socket (no password); return psql's plain output."""
        out = self._run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.root),
            "-p", str(self.port), "-U", "postgres", "-d", database, "-c", statement,
        )  # fmt: skip
        return out.stdout.strip()

    def new_database(self, prefix: str = "t") -> str:
        """A fresh empty database; returns the superuser's URL to it."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}".lower()
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def login_role(self, name: str, password: str, *member_of: str) -> None:
        """A login role with a password (created or reset), granted the given roles."""
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'")
        verb = "ALTER" if exists else "CREATE"
        self.sql(f"{verb} ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        for role in member_of:
            self.sql(f'GRANT "{role}" TO "{name}"')

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def team_database(pg: PostgresCluster, prefix: str = "team") -> str:
    """A fresh database with the agentls schema and roles (`agentls db init`); the owner's URL."""
    from agentls.core.stores.pg_schema import init_database

    url = pg.new_database(prefix)
    init_database(url)
    return url


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def drop_database(pg: PostgresCluster, url: str) -> None:
    """Drop a test's database, ending whatever connections are still open to it."""
    pg.sql(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


def empty_ledger(pg: PostgresCluster, url: str) -> None:
    """Forget every limit, usage, reservation and waiter (between examples of a property test)."""
    pg.sql(
        "TRUNCATE agentls.scopes, agentls.reservations, agentls.waiters, agentls.ledger_entries",
        database_name(url),
    )


@contextlib.contextmanager
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster.start() as pg:
        yield pg


if __name__ == "__main__":
    with cluster() as pg:
        print(f"URL {pg.url()}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            sys.exit(0)
