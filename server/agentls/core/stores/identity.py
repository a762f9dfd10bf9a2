"""Who and where a team database's rows come from: user, host, pid space and workspace.

The user is `AGENTLS_USER`, else the operating system's user name. The pid space says where a
process id means something: the kernel's boot id and the pid namespace, so that a reservation's
process is checked (and swept when gone) only from the machine and container that made it; on
any other a lease has to run out instead.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path

USER_ENV = "AGENTLS_USER"


@dataclass(frozen=True)
class Origin:
    user: str | None
    host: str
    pid_space: str
    workspace: str | None
    front_end: str | None = None


def user_name() -> str | None:
    if name := os.environ.get(USER_ENV, "").strip():
        return name
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry and no LOGNAME/USER: nothing cheap to say
        return None


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()


def pid_space() -> str:
    """Boot id and pid namespace of this process (another container on this host differs)."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "-"
    return f"{_boot_id()}:{namespace}"


def origin(workspace: Path | None, front_end: str | None = None) -> Origin:
    return Origin(
        user=user_name(),
        host=socket.gethostname(),
        pid_space=pid_space(),
        workspace=workspace.name if workspace is not None else None,
        front_end=front_end,
    )
