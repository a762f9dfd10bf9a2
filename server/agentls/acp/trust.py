"""Which folders an agent panel's sessions trust, and what the panel is told when one is not.

A panel opens whatever folder the user has open, fresh clones included, so a session's folder is
untrusted unless the user said otherwise in their own settings file: the folder lies in one of
`trustedFolders` (or `trustWorkspace` is true) in `~/.config/agentls/settings.json`, the same
setting the editors use. `agentls acp --trust` trusts every folder, `--untrusted` none. In an
untrusted folder its agent definitions, MCP configurations and run_command are not used, nor the
MCP servers the panel passes with the session: some panels (Zed) fill those from project settings
a repository ships, so they would run its commands and send its code where it says.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentls.core.trust import ignored_when_untrusted, in_trusted_folder, untrusted_message
from agentls.core.user_settings import read_user_settings, user_settings_file


class TrustMode(enum.Enum):
    SETTINGS = "settings"  # trustedFolders of the user's settings file
    ALL = "all"  # --trust
    NONE = "none"  # --untrusted


@dataclass(frozen=True)
class TrustDecision:
    trusted: bool
    # Told once in each session (before its first answer); None: nothing to tell.
    notice: str | None = None


def decide(
    mode: TrustMode,
    workspace: Path,
    *,
    run_command: bool = False,
    panel_servers: Sequence[str] = (),
) -> TrustDecision:
    """Whether `workspace` is trusted, reading the user's settings file (blocking).

    `panel_servers` names the MCP servers the panel passed with the session, which an untrusted
    folder does not start (told with the rest of what is not used)."""
    if mode is TrustMode.ALL:
        return TrustDecision(True)
    problems: list[str] = []
    trusted = False
    if mode is TrustMode.SETTINGS:
        found = read_user_settings()
        problems = found.problems
        settings = found.settings
        trusted = settings.trust_workspace is True or (
            settings.trust_workspace is None
            and in_trusted_folder(workspace, settings.trusted_folders)
        )
    if trusted:
        return TrustDecision(True, _problems(problems))
    items = ignored_when_untrusted(workspace, run_command=run_command)
    if panel_servers:
        plural = "s" if len(panel_servers) != 1 else ""
        items.append(f"the panel's MCP server{plural} {', '.join(panel_servers)}")
    lines = [untrusted_message(items, how_to_trust(mode, workspace))] if items else []
    return TrustDecision(False, _problems(problems + lines))


def how_to_trust(mode: TrustMode, workspace: Path) -> str:
    if mode is TrustMode.NONE:
        return "agentls acp was started with --untrusted; start it without to use them."
    example = json.dumps({"trustedFolders": [str(workspace)]})
    return (
        f'To use them, add the folder to "trustedFolders" in {user_settings_file()} '
        f"(e.g. {example}), or start agentls acp with --trust (every folder), then start a new "
        "session."
    )


def _problems(lines: list[str]) -> str | None:
    return "\n".join(f"agentls: {line}" for line in lines) if lines else None
