"""The bearer token of `agentls mcp-server --http`: made per start, or read from the user's file.

Anyone who can reach the port would otherwise delegate with the owner's API key and budget (other
local users and processes included), so every request carries the token. A generated token is
written to a file only its owner can read, for the hosts' configuration; a token file the user
names is read only when no one else can read it either.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

# 32 random bytes, URL-safe: 43 characters.
TOKEN_BYTES = 32
# A token the user wrote must be at least this long (a short one can be guessed over the port).
MIN_TOKEN_LENGTH = 16
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))' > {path}; chmod 600 {path}"


class TokenFileError(ValueError):
    """A token file that cannot be used; the message names the file and says what to do."""


@dataclass(frozen=True)
class BearerToken:
    value: str
    # Where it is kept, for the hosts' configuration.
    path: Path
    # True when agentls made it at this start (it is printed once, then); False when read.
    generated: bool
    # True for the default file of a per-start token: removed when the server stops.
    temporary: bool = False


def default_token_file(host: str, port: int) -> Path:
    """Where a generated token goes: one file per address, beside the user's agentls settings."""
    safe_host = "".join(c if c.isalnum() or c in ".-" else "_" for c in host)
    return Path.home() / ".config" / "agentls" / f"mcp-server-{safe_host}-{port}.token"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def read_token_file(path: Path) -> str:
    """The token in `path`, which the user wrote; refused when others may read it."""
    where = f"--token-file {path}"
    try:
        info = path.stat()
    except OSError as exc:
        raise TokenFileError(f"{where}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise TokenFileError(f"{where}: not a regular file")
    if os.name == "posix":
        if info.st_uid != os.getuid():
            raise TokenFileError(f"{where}: owned by another user; use a file of your own")
        if info.st_mode & 0o077:
            raise TokenFileError(
                f"{where}: other users can read it (mode {stat.S_IMODE(info.st_mode):03o}); "
                f"make it yours alone with: chmod 600 {path}"
            )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"{where}: cannot read it ({exc})") from None
    if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        raise TokenFileError(
            f"{where}: expected one token of at least {MIN_TOKEN_LENGTH} printable ASCII "
            f"characters on its first line; make one with: {MAKE_ONE.format(path=path)}"
        )
    if any(c.isspace() for c in token):
        raise TokenFileError(f"{where}: the token has spaces in it; put only the token there")
    return token


def write_token_file(path: Path, token: str, *, replace: bool) -> None:
    """Write `token` to `path`, readable by its owner only from the start (mode 0600).

    `replace`: overwrite what is there (agentls's own file of an earlier start); otherwise the
    file must not exist yet (a `--token-file` path).
    """
    where = f"--token-file {path}" if not replace else str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created with mode 0600, so the token is never in a file others can read, not even for
        # a moment; a replaced file is swapped whole, so a reader never sees half a token.
        target = path.with_name(f".{path.name}.{secrets.token_hex(4)}") if replace else path
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
        if replace:
            os.replace(target, path)
    except FileExistsError:
        raise TokenFileError(f"{where}: created by someone else meanwhile") from None
    except OSError as exc:
        raise TokenFileError(f"{where}: cannot write the token there ({exc.strerror})") from None


def token_from_file(path: Path) -> BearerToken:
    """`--token-file PATH`: the token in it, or, when there is no such file yet, a new token
    written there (kept across starts, so the hosts' configuration stays valid)."""
    path = path.expanduser()
    if path.exists() or path.is_symlink():
        return BearerToken(read_token_file(path), path, generated=False)
    token = new_token()
    write_token_file(path, token, replace=False)
    return BearerToken(token, path, generated=True)


def save_for_address(token: str, host: str, port: int) -> BearerToken:
    """Write a per-start token to the default file for the address the server listens on."""
    path = default_token_file(host, port)
    write_token_file(path, token, replace=True)
    return BearerToken(token, path, generated=True, temporary=True)


def forget(token: BearerToken) -> None:
    """Remove a per-start token's file when the server stops: the token is worthless then."""
    if token.temporary:
        with contextlib.suppress(OSError):
            token.path.unlink()
