"""The agentls language server: state shared by the feature modules, and their registration.

Each feature lives in its own module with a `register(server)` function and imports this module
for types only. Each workspace folder's engine (runtime, budget, audit) is built off the event loop
on first use (`folders.py`), so `initialize` answers before any model SDK loads and no request waits.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from agentls import __version__
from agentls.core.user_settings import UserSettings, user_settings_file
from agentls.lsp.folders import Folders
from agentls.lsp.protocol import AgentProtocol
from agentls.lsp.settings import LspSettings, parse_settings

if TYPE_CHECKING:
    from agentls.core.engine import EngineSettings, ModelPool
    from agentls.core.registry import AgentRegistry
    from agentls.core.runtime import AgentRuntime

log = logging.getLogger("agentls.lsp")


class AgentLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("agentls", __version__, protocol_cls=AgentProtocol)
        self.settings = LspSettings()
        self.init_settings: dict[str, Any] = {}
        # ~/.config/agentls/settings.json, read with each configuration pull (configuration.py).
        self.user_file = UserSettings(user_settings_file())
        # The client's configuration answers hold only what the user allowed (VS Code).
        self.scoped_configuration = False
        # Limits from an untrusted workspace's own settings: they may only lower the ledger's.
        self.lower_limits: dict[str | None, int] = {}
        # Workspace trust (lsp/trust.py): untrusted until a setting or the client says otherwise.
        self.trusted = False
        self.client_trust: bool | None = None
        self.told_untrusted = False
        # Warnings told once: problems of the user's file, ignored workspace settings.
        self.told: set[str] = set()
        self.folders = Folders(self)
        self._background: set[asyncio.Future[Any]] = set()
        # The process's exit status (lsp/lifecycle.py): 1 after `exit` without `shutdown`.
        self.exit_code = 0

    @property
    def root(self) -> Path | None:
        """The first workspace folder (relative agent folders resolve against it), or None."""
        roots = self.folders.roots()
        return roots[0] if roots else None

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a reference to a background task until it ends."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def apply_settings(self, section: Any = None) -> None:
        """Apply the layers: the user's file, initializationOptions, then the editor's answer
        (`section`), which in an untrusted workspace may only tighten (core/settings_scope.py)."""
        from agentls.core.settings_scope import Restricted, restrict_untrusted
        from agentls.lsp.trust import tell_ignored, update_trust, workspace_trusted

        user_layers = (self.user_file.layer, self.init_settings)
        merged, problems = parse_settings(*user_layers, section, previous=self.settings)
        for problem in problems:
            self.show_warning(problem)
        # A client that scopes its answers itself (VS Code) sends only what the user allowed.
        user = merged if self.scoped_configuration else parse_settings(*user_layers)[0]
        trusted = workspace_trusted(self, user, merged)
        restricted = Restricted(merged) if trusted else restrict_untrusted(merged, user)
        settings = restricted.settings
        # Only the agent folders change which definitions load (files changing is watched apart).
        reload = settings.agent_folders != self.settings.agent_folders
        was_trusted = self.trusted
        self.settings, self.lower_limits = settings, restricted.lower_limits
        update_trust(self, trusted)
        tell_ignored(self, restricted.ignored)
        for runtime in self.folders.runtimes():
            self.configure_runtime(runtime)
        if reload or self.trusted != was_trusted:
            self.folders.reload()

    def engine_settings(self) -> EngineSettings:
        """The engine's settings in force (a folder's runtime is built and configured with them)."""
        return self.settings.engine(trusted=self.trusted, lower_limits=self.lower_limits)

    def configure_runtime(self, runtime: AgentRuntime) -> None:
        """Apply the settings in force to a built runtime (model, limits, budget, MCP, commands)."""
        from agentls.core.engine import ModelPool, apply_mcp_settings

        engine = self.engine_settings()
        old_pool = runtime.model_factory
        same_model = (
            isinstance(old_pool, ModelPool)
            and old_pool.settings.model_settings() == engine.model_settings()
        )
        if not same_model:
            runtime.model_factory = ModelPool(engine)
        runtime.config.max_parallel = engine.max_parallel
        runtime.config.max_depth = engine.max_depth
        runtime.config.max_output_tokens = engine.max_output_tokens
        runtime.config.default_run_budget = engine.budget.per_run
        runtime.config.budget_wait_seconds = engine.budget.wait_seconds
        runtime.config.min_output_tokens = engine.budget.min_output_tokens
        runtime.config.prices = dict(engine.prices)
        if runtime.commands is not None:
            runtime.commands.settings = engine.run_command
            runtime.commands.trusted = self.trusted
        self.keep(asyncio.get_running_loop().create_task(self._apply_limits(runtime, engine)))
        apply_mcp_settings(runtime, engine)
        if isinstance(old_pool, ModelPool) and not same_model:
            # Runs in flight still use the old pool's clients: close it once they end.
            self.keep(
                asyncio.get_running_loop().create_task(
                    self._close_when_idle(old_pool, runtime, runtime.active_runs)
                )
            )

    async def _apply_limits(self, runtime: AgentRuntime, engine: EngineSettings) -> None:
        """Write the settings' limits to the ledger off the loop (it may be locked a while)."""
        from agentls.core.engine import aapply_budget_settings

        try:
            await aapply_budget_settings(runtime.budgeter, engine.budget)
        except Exception as exc:
            self.show_warning(
                f"agentls.budget: the limits could not be written to the ledger: {exc}"
            )
            return
        if engine.budget.lower_total is not None or engine.budget.lower_per_agent:
            from agentls.lsp.trust import tell_limits_not_lowered

            tell_limits_not_lowered(self, engine.budget, await runtime.budgeter.asnapshot())

    async def _close_when_idle(
        self, pool: ModelPool, runtime: AgentRuntime, run_ids: list[str]
    ) -> None:
        while set(run_ids) & set(runtime.active_runs):
            await asyncio.sleep(0.5)
        await pool.aclose()

    def reload_registry(self) -> None:
        """Reload definitions from disk, off the loop; agents created in this session stay."""
        self.folders.reload()

    def report_definition_errors(self, root: Path, registry: AgentRegistry) -> None:
        """Log a folder's definition errors; its open definition files get diagnostics again."""
        from agentls.lsp.definition_files import republish_open

        for error in registry.errors:
            self.window_log_message(
                types.LogMessageParams(type=types.MessageType.Warning, message=f"[agentls] {error}")
            )
        republish_open(self, root, registry)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls's handler for errors outside a request; a body that is not JSON is answered."""
        if source is JsonRpcInternalError:
            # pygls reports a failed send by sending a message, which fails the same way, and so
            # on until the stack runs out (minutes of tracebacks when the editor has gone).
            log.debug("could not send to the editor: %s", error)
            return
        protocol = self.protocol
        if isinstance(protocol, AgentProtocol) and protocol.answer_parse_error(error):
            return
        super().report_server_error(error, source)

    def show_warning(self, message: str) -> None:
        log.warning(message)
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=f"agentls: {message}")
        )

    def buffer_text(self, path: Path) -> str | None:
        """The editor's text of a file it has open, else None."""
        doc = self.workspace.text_documents.get(from_fs_path(str(path)))
        return doc.source if doc is not None else None

    def path_of(self, uri: str) -> Path | None:
        """The file a `file:` URI names; None for other schemes (`untitled:` buffers)."""
        if not uri.startswith("file:"):
            return None
        path = to_fs_path(uri)
        return Path(path).resolve() if path else None


def create_server() -> AgentLanguageServer:
    from agentls.lsp import (
        code_actions,
        commands,
        configuration,
        definition_files,
        lifecycle,
    )

    server = AgentLanguageServer()
    for feature in (configuration, commands, code_actions, definition_files, lifecycle):
        feature.register(server)
    return server


def main() -> int:
    """Serve over stdio until `exit` or the end of input; the process's exit status."""
    from agentls.lsp import stdio
    from agentls.lsp.collector import loading

    logging.basicConfig(level=logging.WARNING, format="agentls: %(levelname)s %(message)s")
    with loading():  # the features' imports, before the server answers anything
        server = create_server()
    stdio.start_io(server)
    return server.exit_code
