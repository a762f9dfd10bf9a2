"""Settings from the user's settings file, initializationOptions, workspace/configuration and
didChangeConfiguration, in that order (later wins key by key, inside `budget` and the other
objects too: core/settings.py).

initializationOptions: `{"settings": {...agentls section...}, "workspaceTrusted": bool,
"scopedConfiguration": bool}` (or `{"agentls": {...}}`, or the section alone). They and the
user's file (`~/.config/agentls/settings.json`) are the user's own configuration. What the editor
answers to workspace/configuration (or pushes) may come from files committed to the project
(.dir-locals.el, .helix/languages.toml, .zed/settings.json), so in an untrusted workspace it may
only tighten (core/settings_scope.py) - unless the client says with `scopedConfiguration` that it
sends a workspace's values only where the user allowed them (the VS Code client does, from VS
Code's own workspace trust). The API key is only ever accepted in initializationOptions (clients
keep it in secret storage, never in settings files).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from agentls.lsp.apply_settings import apply_settings
from agentls.lsp.settings import parse_settings

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

SECTION = "agentls"


@dataclass
class InitOptions:
    settings: dict[str, Any]
    # A client with its own workspace trust (VS Code) says so; see lsp/trust.py.
    workspace_trusted: bool | None = None
    # The client's workspace/configuration answers hold only what the user allowed.
    scoped_configuration: bool = False


def _init_options(raw: Any) -> InitOptions:
    if not isinstance(raw, dict):
        return InitOptions({})
    # `{"settings": {...}}`, or `{"agentls": {...}}` from editors that send one config object as
    # both the initialization options and the workspace/configuration answers (Helix), or the
    # section itself.
    settings = raw.get("settings", raw.get(SECTION, raw))
    trusted = raw.get("workspaceTrusted")
    return InitOptions(
        settings if isinstance(settings, dict) else {},
        trusted if isinstance(trusted, bool) else None,
        raw.get("scopedConfiguration") is True,
    )


def _without_key(section: Any) -> Any:
    # The API key never comes from settings files, only from initializationOptions.
    if isinstance(section, dict):
        return {k: v for k, v in section.items() if k != "apiKey"}
    return section


async def read_user_file(ls: AgentLanguageServer) -> None:
    """(Re)read ~/.config/agentls/settings.json off the loop; a new problem is told once."""
    from agentls.core.user_settings import read_user_settings

    ls.user_file = await asyncio.to_thread(read_user_settings)
    for problem in ls.user_file.problems:
        if problem not in ls.told:
            ls.told.add(problem)
            ls.show_warning(problem)


async def pull_configuration(ls: AgentLanguageServer) -> None:
    """Ask the client for the `agentls` section when it supports workspace/configuration."""
    await read_user_file(ls)
    caps = ls.client_capabilities.workspace
    if not (caps and caps.configuration):
        apply_settings(ls)
        return
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as exc:  # a client that fails the request keeps the initialization settings
        ls.show_warning(f"could not read the editor's agentls settings ({exc}); using defaults")
        apply_settings(ls)
        return
    apply_settings(ls, _without_key(result[0] if result else None))


def register(server: AgentLanguageServer) -> None:
    @server.feature(types.INITIALIZE)
    def on_initialize(ls: AgentLanguageServer, params: types.InitializeParams) -> None:
        options = _init_options(params.initialization_options)
        ls.init_settings = options.settings
        ls.client_trust = options.workspace_trusted
        ls.scoped_configuration = options.scoped_configuration
        ls.settings, problems = parse_settings(ls.init_settings)
        for problem in problems:
            ls.show_warning(problem)
        from agentls.lsp.trust import workspace_trusted

        ls.trusted = workspace_trusted(ls, ls.settings, ls.settings)

    @server.feature(types.INITIALIZED)
    async def on_initialized(ls: AgentLanguageServer, params: types.InitializedParams) -> None:
        await pull_configuration(ls)
        # Load each folder's agents now, off the loop, so the first lightbulb finds them ready,
        # and what the first run needs, so it is as quick as the tenth.
        for root in ls.folders.roots():
            ls.keep(asyncio.ensure_future(ls.folders.engine(root).registry()))
        ls.folders.warm_up()
        from agentls.lsp.definition_files import watch_definition_files

        await watch_definition_files(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def on_did_change_configuration(
        ls: AgentLanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        caps = ls.client_capabilities.workspace
        if caps and caps.configuration:
            await pull_configuration(ls)
            return
        # Push-style clients put the settings in the notification itself.
        await read_user_file(ls)
        pushed = params.settings
        section = pushed.get(SECTION, pushed) if isinstance(pushed, dict) else None
        apply_settings(ls, _without_key(section) if isinstance(section, dict) else None)
