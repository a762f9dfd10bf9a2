"""Workspace trust in the editor: whether this workspace's definitions, MCP servers and run_command
may be used, and telling the user once what an untrusted workspace had that was ignored.

Trust comes from the user's own configuration only (initializationOptions, the user's settings
file `~/.config/agentls/settings.json`, the client's own trust), never from what the editor
answers to workspace/configuration: editors fill that from files committed to the project. First
that applies:
- `trustWorkspace: false` from anywhere: untrusted (taking trust away only tightens);
- the user's `trustWorkspace: true`;
- `workspaceTrusted` in initializationOptions (a client with its own trust, VS Code);
- the workspace root lying in a folder of the user's `trustedFolders`;
- otherwise untrusted: a language server starts for whatever folder an editor opens, cloned
  repositories included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agentls.core.trust import ignored_when_untrusted, in_trusted_folder, untrusted_message

if TYPE_CHECKING:
    from agentls.core.budget import BudgetSnapshot
    from agentls.core.engine import BudgetSettings
    from agentls.core.settings import Settings
    from agentls.lsp.server import AgentLanguageServer

USER_FILE = "~/.config/agentls/settings.json"
HOW_TO_TRUST = (
    "To use them, trust the workspace (VS Code: Manage Workspace Trust; other editors: add its "
    f'folder to "trustedFolders" in {USER_FILE}, or set agentls.trustWorkspace to true in the '
    "initializationOptions your editor sends for this project)."
)


def workspace_trusted(ls: AgentLanguageServer, user: Settings, merged: Settings) -> bool:
    """Trust from the user's own settings (`user`); `merged` (with the editor's answer) may only
    take it away."""
    if merged.trust_workspace is False or user.trust_workspace is False:
        return False
    if user.trust_workspace:
        return True
    if ls.client_trust is not None:
        return ls.client_trust
    return in_trusted_folder(ls.root, user.trusted_folders)


def update_trust(ls: AgentLanguageServer, trusted: bool) -> None:
    """Apply a trust decision; the caller reloads what depends on it."""
    ls.trusted = trusted
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


def tell_ignored(ls: AgentLanguageServer, ignored: Sequence[str]) -> None:
    """Say once which of the workspace's own settings were not taken, and why."""
    new = [item for item in ignored if item not in ls.told]
    if not new:
        return
    ls.told.update(new)
    ls.show_warning(
        "this workspace is not trusted, so the settings the editor sends for it (which can come "
        "from files in the project) may only tighten; ignored: "
        f"{', '.join(new)}. Put your own settings in {USER_FILE} or in the initializationOptions "
        f'your editor sends; to trust the folder, add it to "trustedFolders" in {USER_FILE}.'
    )


def tell_limits_not_lowered(
    ls: AgentLanguageServer, budget: BudgetSettings, snapshot: BudgetSnapshot
) -> None:
    """Say once which of the workspace's budget limits the ledger did not take: the limit in
    force was lower (a workspace's own settings may only lower it)."""
    ignored = []
    if budget.lower_total is not None and snapshot.limit != budget.lower_total:
        ignored.append(
            f"budget.total {budget.lower_total} (the limit in force is {snapshot.limit})"
        )
    for agent, limit in budget.lower_per_agent.items():
        entry = snapshot.agents.get(agent)
        if entry is not None and entry.limit != limit:
            ignored.append(f"budget.perAgent.{agent} {limit} (the limit in force is {entry.limit})")
    tell_ignored(ls, ignored)
