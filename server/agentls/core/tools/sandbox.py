"""Confines every path an agent names to the workspace root: no `..`, no absolute paths, no symlinks out."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class SandboxError(ValueError):
    """A path the agent may not touch; the message names the path and why."""


class WorkspaceSandbox:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

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
