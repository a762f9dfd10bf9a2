"""The language server assembled: each feature module registers its handlers on the server, and
`main` serves it over stdio (`agentls serve`).

Kept apart from lsp/server.py (the server's state, which every feature imports for its type) so
that no feature module and the server import each other.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agentls.lsp import code_actions, commands, configuration, definition_files, lifecycle
from agentls.lsp.apply_settings import configure_runtime
from agentls.lsp.folders import FolderHooks
from agentls.lsp.server import AgentLanguageServer

if TYPE_CHECKING:
    from agentls.core.runtime import AgentRuntime
    from agentls.core.state_check import StateError
    from agentls.core.tools.command import Approver

_FEATURES = (configuration, commands, code_actions, definition_files, lifecycle)


# The features a folder's engine uses once something runs, imported then (off the event loop),
# not at start-up.


def _approver(ls: AgentLanguageServer) -> Approver:
    from agentls.lsp.approvals import command_approver

    return command_approver(ls)


def _unavailable(ls: AgentLanguageServer, exc: StateError) -> Exception:
    from agentls.lsp.state_errors import state_unavailable

    return state_unavailable(ls, exc)


def _runtime_built(ls: AgentLanguageServer, runtime: AgentRuntime) -> None:
    from agentls.lsp.events import attach

    attach(ls, runtime)
    configure_runtime(ls, runtime)


def _import_features() -> None:
    import agentls.lsp.approvals
    import agentls.lsp.events
    import agentls.lsp.state_errors  # noqa: F401


HOOKS = FolderHooks(
    approver=_approver,
    unavailable=_unavailable,
    runtime_built=_runtime_built,
    definitions_loaded=definition_files.report_definition_errors,
    import_features=_import_features,
)


def create_server() -> AgentLanguageServer:
    server = AgentLanguageServer(HOOKS)
    for feature in _FEATURES:
        feature.register(server)
    return server


def main() -> int:
    """Serve over stdio until `exit` or the end of input; the process's exit status."""
    from agentls.lsp import stdio

    logging.basicConfig(level=logging.WARNING, format="agentls: %(levelname)s %(message)s")
    server = create_server()
    stdio.start_io(server)
    return server.exit_code
