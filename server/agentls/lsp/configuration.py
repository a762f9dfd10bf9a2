"""Settings from initializationOptions, workspace/configuration and didChangeConfiguration.

initializationOptions: `{"settings": {...agentls section...}, "workspaceTrusted": bool}` (or
`{"agentls": {...}}`, or the section alone); the API key is only ever accepted there (clients keep
it in secret storage, never in settings files).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer
from agentls.lsp.settings import parse_settings

SECTION = "agentls"


def _init_options(raw: Any) -> tuple[dict[str, Any], bool | None]:
    if not isinstance(raw, dict):
        return {}, None
    # `{"settings": {...}}`, or `{"agentls": {...}}` from editors that send one config object as
    # both the initialization options and the workspace/configuration answers (Helix), or the
    # section itself.
    settings = raw.get("settings", raw.get(SECTION, raw))
    # A client with its own workspace trust (VS Code) says so; see lsp/trust.py.
    trusted = raw.get("workspaceTrusted")
    return (settings if isinstance(settings, dict) else {}), (
        trusted if isinstance(trusted, bool) else None
    )


async def pull_configuration(ls: AgentLanguageServer) -> None:
    """Ask the client for the `agentls` section when it supports workspace/configuration."""
    caps = ls.client_capabilities.workspace
    if not (caps and caps.configuration):
        ls.apply_settings()
        return
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as exc:  # a client that fails the request keeps the initialization settings
        ls.show_warning(f"could not read the editor's agentls settings ({exc}); using defaults")
        ls.apply_settings()
        return
    section = result[0] if result else None
    # The API key never comes from settings files, only from initializationOptions.
    if isinstance(section, dict):
        section = {k: v for k, v in section.items() if k != "apiKey"}
    ls.apply_settings(section)


def register(server: AgentLanguageServer) -> None:
    @server.feature(types.INITIALIZE)
    def on_initialize(ls: AgentLanguageServer, params: types.InitializeParams) -> None:
        ls.init_settings, ls.client_trust = _init_options(params.initialization_options)
        ls.settings, problems = parse_settings(ls.init_settings)
        for problem in problems:
            ls.show_warning(problem)
        from agentls.lsp.trust import workspace_trusted

        ls.trusted = workspace_trusted(ls)

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
        pushed = params.settings
        section = pushed.get(SECTION, pushed) if isinstance(pushed, dict) else None
        if isinstance(section, dict):
            section = {k: v for k, v in section.items() if k != "apiKey"}
        ls.apply_settings(section)
