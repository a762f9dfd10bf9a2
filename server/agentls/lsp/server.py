"""The agentls language server: the state the feature modules share.

Each feature lives in its own module with a `register(server)` function and imports this module
for types only; lsp/app.py registers them. Each workspace folder's engine (runtime, budget,
audit) is built off the event loop on first use (`folders.py`), so `initialize` answers before
any model SDK loads and no request waits.
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
from agentls.lsp.folders import FolderHooks, Folders
from agentls.lsp.protocol import AgentProtocol
from agentls.lsp.settings import LspSettings

if TYPE_CHECKING:
    from agentls.core.engine import EngineSettings

log = logging.getLogger("agentls.lsp")


class AgentLanguageServer(LanguageServer):
    def __init__(self, hooks: FolderHooks[AgentLanguageServer]) -> None:
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
        self.folders: Folders[AgentLanguageServer] = Folders(self, hooks)
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

    def engine_settings(self) -> EngineSettings:
        """The engine's settings in force (a folder's runtime is built and configured with them)."""
        return self.settings.engine(trusted=self.trusted, lower_limits=self.lower_limits)

    def reload_registry(self) -> None:
        """Reload definitions from disk, off the loop; agents created in this session stay."""
        self.folders.reload()

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
