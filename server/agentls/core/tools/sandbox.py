"""Confines every path an agent names to the workspace root: no `..`, no absolute paths, no symlinks out."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath


class SandboxError(ValueError):
    """A path the agent may not touch; the message names the path and why."""


# The editor's text of a file when it has one (unsaved changes included), else None.
Overlay = Callable[[Path], str | None]


class WorkspaceSandbox:
    def __init__(self, root: Path, overlay: Overlay | None = None) -> None:
        self.root = root.resolve()
        self.overlay = overlay

    def read_text(self, path: Path) -> str:
        """A file's text as the user sees it: the editor's buffer when open, else the disk.

        Only regular files are read: a FIFO would block the read (and the event loop) until a
        writer came, a device would never end. The check is made on the opened descriptor.
        """
        if self.overlay is not None and (text := self.overlay(path)) is not None:
            return text
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SandboxError(
                    f"{path.name!r} is not a regular file (a pipe, socket or device)"
                )
            with open(fd, "rb", closefd=False) as f:
                return f.read().decode("utf-8")  # exactly as stored: CRLF stays CRLF
        finally:
            os.close(fd)

    def resolve(self, relative: str, *, must_exist: bool = True) -> Path:
        """The real path for a workspace-relative path, or SandboxError."""
        if not isinstance(relative, str) or not relative.strip():
            raise SandboxError("path must be a non-empty workspace-relative string")
        pure = PurePosixPath(relative.replace("\\", "/"))
        if (
            pure.is_absolute()
            or relative.startswith("~")
            or (len(relative) > 1 and relative[1] == ":")
        ):
            raise SandboxError(
                f"{relative!r} is absolute; give a path relative to the workspace root"
            )
        if ".." in pure.parts:
            raise SandboxError(f"{relative!r} leaves the workspace ('..' is not allowed)")
        candidate = self.root.joinpath(*pure.parts)
        real = candidate.resolve()
        if real != self.root and self.root not in real.parents:
            raise SandboxError(f"{relative!r} resolves outside the workspace (symlink)")
        if must_exist and not real.exists():
            raise SandboxError(f"{relative!r} does not exist in the workspace")
        return real

    def relative(self, path: Path) -> str:
        """Workspace-relative POSIX form of a path inside the workspace (raises when outside)."""
        real = path.resolve()
        if real != self.root and self.root not in real.parents:
            raise SandboxError(f"{path} is outside the workspace {self.root}")
        return real.relative_to(self.root).as_posix() or "."

    def contains(self, path: Path) -> bool:
        try:
            self.relative(path)
        except SandboxError:
            return False
        return True
