"""Workspace trust in the editor: whether this workspace's definitions, MCP servers and run_command
may be used, and telling the user once what an untrusted workspace had that was ignored.

Where trust comes from, first that applies:
- the `trustWorkspace` setting (true/false), which the VS Code client fills from VS Code's own
  workspace trust and other editors' users set in their configuration for a project;
- `workspaceTrusted` in initializationOptions (a client with its own trust);
- the workspace root lying in a folder of the `trustedFolders` setting;
- otherwise untrusted: a language server starts for whatever folder an editor opens, cloned
  repositories included.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentls.core.trust import ignored_when_untrusted, inside, untrusted_message

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

HOW_TO_TRUST = (
    "To use them, trust the workspace (VS Code: Manage Workspace Trust; other editors: set "
    "agentls.trustWorkspace to true for this project, or add its folder to agentls.trustedFolders)."
)


def workspace_trusted(ls: AgentLanguageServer) -> bool:
    settings = ls.settings
    if settings.trust_workspace is not None:
        return settings.trust_workspace
    if ls.client_trust is not None:
        return ls.client_trust
    folders = [Path(f).expanduser() for f in settings.trusted_folders]
    root = ls.root
    return root is not None and any(f.is_absolute() and inside(root, f) for f in folders)


def update_trust(ls: AgentLanguageServer) -> None:
    """Re-evaluate trust after a settings change; the caller reloads what depends on it."""
    ls.trusted = workspace_trusted(ls)
    for runtime in ls.folders.runtimes():
        if runtime.commands is not None:
            runtime.commands.trusted = ls.trusted
    if ls.trusted:
        ls.told_untrusted = False
        return
    if ls.told_untrusted:
        return
    if ls.root is None:
        return
    folders = [Path(p).expanduser() for p in ls.settings.agent_folders]
    items = ignored_when_untrusted(ls.root, folders, run_command=ls.settings.run_command.enabled)
    if items:
        ls.told_untrusted = True
        ls.show_warning(untrusted_message(items, HOW_TO_TRUST))
