"""Who ran a run, on what, through which front end: recorded on every audit event.

- user: `AGENTLS_USER`, else the operating system's user at this host (`alice@laptop`);
- workspace: the git remote of the repository the workspace folder is in (`origin`, else the
  first remote), credentials taken out of the URL, else the folder's name. The repository's
  config file is read directly: no git process, and nothing a repository's own git hooks or
  config could run;
- front end: `cli`, `lsp`, `acp` or `mcp`, set once by the command that started the process
  (cli/__init__.py); None in a program that embeds the engine without one.

A team's trail then says who ran which agent on which repository, whichever laptop, CI job or
editor it came from.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from agentls.core.events import RunEvent

USER_ENV = "AGENTLS_USER"
FRONT_ENDS = ("cli", "lsp", "acp", "mcp")
# A git config file is a few kilobytes; a remote URL a few hundred characters.
MAX_CONFIG_BYTES = 1_000_000
MAX_FIELD_CHARS = 500

_REMOTE = re.compile(r'\[\s*remote\s+"((?:[^"\\]|\\.)*)"\s*\]')

_front_end: str | None = None


def set_front_end(name: str) -> None:
    """Say which front end this process is (once, at start-up)."""
    global _front_end
    if name not in FRONT_ENDS:
        raise ValueError(f"unknown front end {name!r}; expected one of {', '.join(FRONT_ENDS)}")
    _front_end = name


def front_end() -> str | None:
    return _front_end


@dataclass(frozen=True)
class RunOrigin:
    """The who and where stamped on a runtime's events."""

    user: str | None
    workspace: str | None
    front_end: str | None

    def stamp(self, event: RunEvent) -> None:
        """Fill the event's who/where fields it does not already carry."""
        if event.user is None:
            event.user = self.user
        if event.workspace is None:
            event.workspace = self.workspace
        if event.front_end is None:
            event.front_end = self.front_end


def origin_of(workspace: Path) -> RunOrigin:
    """This process's user and front end, and `workspace`'s name (reads a file: not on the loop)."""
    return RunOrigin(current_user(), workspace_name(workspace), front_end())


def current_user() -> str | None:
    if name := os.environ.get(USER_ENV, "").strip():
        return name[:MAX_FIELD_CHARS]
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry and no LOGNAME/USER: nothing cheap to say
        return None
    return f"{user}@{socket.gethostname()}"[:MAX_FIELD_CHARS]


def workspace_name(root: Path) -> str:
    """The git remote URL of the repository holding `root` (no credentials), else its name."""
    remote = git_remote(root)
    return remote if remote is not None else (root.name or str(root))


def git_remote(root: Path) -> str | None:
    config = _git_config(root)
    if config is None:
        return None
    try:
        with config.open("rb") as f:
            text = f.read(MAX_CONFIG_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    urls = remote_urls(text)
    url = urls.get("origin") or next(iter(urls.values()), None)
    if not url:
        return None
    return without_credentials(url)[:MAX_FIELD_CHARS]


def remote_urls(config: str) -> dict[str, str]:
    """`{remote name: url}` of a git config file's text, in file order (the first url wins)."""
    urls: dict[str, str] = {}
    remote: str | None = None
    for raw in config.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = _REMOTE.match(line)
            remote = match.group(1) if match else None
            continue
        key, equals, value = line.partition("=")
        if remote is not None and equals and key.strip().lower() == "url":
            value = re.split(r"\s[#;]", value, maxsplit=1)[0].strip().strip('"')
            urls.setdefault(remote, value)
    return urls


def without_credentials(url: str) -> str:
    """A remote URL without what could be a secret: the user and password (a token often
    stands in for either) and the query. `git@host:org/repo` (scp-style: a user name, never a
    password) is kept as written."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/]*@", "//", url.split("?", 1)[0])
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _git_config(root: Path) -> Path | None:
    """The config file of the repository `root` is in: `.git/config`, or for a worktree or a
    submodule (`.git` a file naming its git folder) that folder's (common) config."""
    for folder in (root, *root.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return _common(dot_git) / "config"
        if dot_git.is_file():
            try:
                first = dot_git.read_text(encoding="utf-8", errors="replace").splitlines()[0]
            except (OSError, IndexError):
                return None
            if not first.startswith("gitdir:"):
                return None
            return _common(folder / first.removeprefix("gitdir:").strip()) / "config"
    return None


def _common(git_dir: Path) -> Path:
    """A linked worktree's git folder names the main one in `commondir`; remotes live there."""
    try:
        common = (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return git_dir
    return git_dir / common if common else git_dir
