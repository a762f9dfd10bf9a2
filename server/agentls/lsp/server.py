"""The agentls language server: state shared by the feature modules, and their registration.

Each feature lives in its own module with a `register(server)` function. The engine (runtime,
budget, audit) is built on first use, so `initialize` answers before any model SDK loads.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from agentls import __version__
from agentls.lsp.protocol import AgentProtocol
from agentls.lsp.settings import LspSettings, parse_settings

if TYPE_CHECKING:
    from agentls.core.engine import ModelPool
    from agentls.core.runtime import AgentRuntime
    from agentls.lsp.events import EventBridge

log = logging.getLogger("agentls.lsp")


class AgentLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("agentls", __version__, protocol_cls=AgentProtocol)
        self.settings = LspSettings()
        self.init_settings: dict[str, Any] = {}
        # Workspace trust (lsp/trust.py): untrusted until a setting or the client says otherwise.
        self.trusted = False
        self.client_trust: bool | None = None
        self.told_untrusted = False
        self._runtime: AgentRuntime | None = None
        self.bridge: EventBridge | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def root(self) -> Path:
        try:
            root = self.workspace.root_path
        except RuntimeError:  # before initialize
            root = None
        return Path(root).resolve() if root else Path.cwd().resolve()

    @property
    def has_runtime(self) -> bool:
        return self._runtime is not None

    @property
    def runtime(self) -> AgentRuntime:
        if self._runtime is None:
            from agentls.core.engine import build_runtime
            from agentls.core.state_check import StateError
            from agentls.lsp.approvals import command_approver
            from agentls.lsp.events import EventBridge
            from agentls.lsp.state_errors import state_unavailable

            try:
                self._runtime = build_runtime(
                    self.root,
                    self.settings.engine(trusted=self.trusted),
                    approver=command_approver(self),
                )
            except StateError as exc:
                raise state_unavailable(self, exc) from None
            # Tools read what the user sees: open buffers, unsaved changes included.
            self._runtime.sandbox.overlay = self.buffer_text
            self.bridge = EventBridge(self, self._runtime)
            self.report_definition_errors()
        return self._runtime

    def apply_settings(self, *layers: Any) -> None:
        """Merge settings layers over the initializationOptions ones and apply them to the engine."""
        settings, problems = parse_settings(self.init_settings, *layers)
        for problem in problems:
            self.show_warning(problem)
        self.settings = settings
        from agentls.lsp.trust import update_trust

        update_trust(self)
        if self._runtime is not None:
            from agentls.core.engine import ModelPool, apply_budget_settings, apply_mcp_settings

            engine = settings.engine(trusted=self.trusted)
            old_pool = self._runtime.model_factory
            same_model = (
                isinstance(old_pool, ModelPool)
                and old_pool.settings.model_settings() == engine.model_settings()
            )
            if not same_model:
                self._runtime.model_factory = ModelPool(engine)
            self._runtime.config.max_parallel = engine.max_parallel
            self._runtime.config.max_depth = engine.max_depth
            self._runtime.config.max_output_tokens = engine.max_output_tokens
            self._runtime.config.default_run_budget = engine.budget.per_run
            if self._runtime.commands is not None:
                self._runtime.commands.settings = engine.run_command
            self.reload_registry()
            apply_budget_settings(self._runtime.budgeter, engine.budget)
            apply_mcp_settings(self._runtime, engine)
            if isinstance(old_pool, ModelPool) and not same_model:
                # Runs in flight still use the old pool's clients: close it once they end.
                closing = asyncio.get_running_loop().create_task(
                    self._close_when_idle(old_pool, self._runtime.active_runs)
                )
                self._background.add(closing)
                closing.add_done_callback(self._background.discard)

    async def _close_when_idle(self, pool: ModelPool, run_ids: list[str]) -> None:
        while self._runtime is not None and set(run_ids) & set(self._runtime.active_runs):
            await asyncio.sleep(0.5)
        await pool.aclose()

    def reload_registry(self) -> None:
        """Reload definitions from disk; agents created in this session (not saved) stay."""
        if self._runtime is None:
            return
        from agentls.core.engine import load_registry

        fresh = load_registry(self.root, self.settings.engine(trusted=self.trusted))
        for agent in self._runtime.registry:
            if agent.source == "generated" and agent.definition.name not in fresh:
                fresh.add(agent)
        self._runtime.registry = fresh
        self.report_definition_errors()

    def report_definition_errors(self) -> None:
        """Log definition errors of files not open in the editor (open ones get diagnostics)."""
        if self._runtime is None:
            return
        for error in self._runtime.registry.errors:
            self.window_log_message(
                types.LogMessageParams(type=types.MessageType.Warning, message=f"[agentls] {error}")
            )

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


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="agentls: %(levelname)s %(message)s")
    create_server().start_io()
