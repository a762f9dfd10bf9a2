"""Workspace trust: what a workspace brings that runs with the user's rights, and what is ignored
until the user trusts it.

A cloned repository can ship agent definitions (whose instructions and tools the user would run
by name), MCP server configurations (programs agentls would start) and folders of definitions
named in its own settings. None of them is used in an untrusted workspace, and run_command is
never offered there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DEFINITION_FOLDERS = (".agentls/agents", ".claude/agents")
MCP_FILES = (".agentls/mcp.json", ".mcp.json")
_SUFFIXES = (".yaml", ".yml", ".md")


def inside(path: Path, workspace: Path) -> bool:
    real, root = path.resolve(), workspace.resolve()
    return real == root or root in real.parents


def in_trusted_folder(root: Path | None, trusted_folders: Sequence[str]) -> bool:
    """Whether the workspace root lies in one of the user's `trustedFolders` (absolute, or ~/...)."""
    folders = [Path(f).expanduser() for f in trusted_folders]
    return root is not None and any(f.is_absolute() and inside(root, f) for f in folders)


def _count_definitions(folder: Path) -> int:
    # Claude Code's folder holds Markdown agents only; ours YAML and Markdown.
    suffixes = (".md",) if folder.parent.name == ".claude" else _SUFFIXES
    try:
        return sum(1 for p in folder.iterdir() if p.suffix in suffixes and p.is_file())
    except OSError:
        return 0


def ignored_when_untrusted(
    workspace: Path, agent_folders: Sequence[Path] = (), *, run_command: bool = False
) -> list[str]:
    """What an untrusted workspace holds that agentls does not use, as workspace-relative names."""
    items = []
    folders = [workspace / f for f in DEFINITION_FOLDERS]
    folders += [f if f.is_absolute() else workspace / f for f in agent_folders]
    for folder in folders:
        if inside(folder, workspace) and (n := _count_definitions(folder)):
            rel = folder.resolve().relative_to(workspace.resolve()).as_posix()
            items.append(f"{n} agent definition{'s' if n != 1 else ''} in {rel}/")
    items += [name for name in MCP_FILES if (workspace / name).is_file()]
    if run_command:
        items.append("run_command (agentls.runCommand.enabled)")
    return items


def untrusted_message(items: Sequence[str], how_to_trust: str) -> str:
    return (
        f"this workspace is not trusted, so agentls does not use {', '.join(items)}. {how_to_trust}"
    )
