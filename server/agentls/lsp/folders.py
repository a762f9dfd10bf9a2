"""The editor's workspace folders, each its own agentls workspace: state, agents and budget.

Nothing here runs on the event loop that could stall it. A folder's agent registry (all a code
action needs) loads on a worker thread the first time it is asked for; its runtime (budget ledger,
audit store, crash recovery, the engine's imports) is built on a worker thread on its first run,
and requests that arrive meanwhile share that one build. Both pause garbage collection
(`collector.py`). State (`.agentls/`) is created then, not when text is merely selected. Without a
folder there is no workspace: runs say so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from agentls.lsp.collector import loads_code

if TYPE_CHECKING:
    from pygls.workspace import Workspace

    from agentls.core.engine import EngineSettings
    from agentls.core.registry import AgentRegistry
    from agentls.core.runtime import AgentRuntime
    from agentls.core.state_check import StateError
    from agentls.core.tools.command import Approver
    from agentls.lsp.settings import LspSettings

log = logging.getLogger("agentls.lsp")

T = TypeVar("T")


class FolderHost(Protocol):
    """What the folders use of the language server that holds them (lsp/server.py), so that
    this module need not know the server's class."""

    settings: LspSettings
    trusted: bool

    @property
    def workspace(self) -> Workspace: ...

    def engine_settings(self) -> EngineSettings: ...

    def buffer_text(self, path: Path) -> str | None: ...

    def path_of(self, uri: str) -> Path | None: ...

    def keep(self, task: asyncio.Future[Any]) -> None: ...


H = TypeVar("H", bound=FolderHost)


@dataclass(frozen=True)
class FolderHooks(Generic[H]):
    """What a folder's engine needs of the LSP features, each given the server (`H`). lsp/app.py
    gives them, so that this module, part of the server's state, imports none of the features
    (they import the server)."""

    # Approves the commands an agent asks to run (lsp/approvals.py).
    approver: Callable[[H], Approver]
    # The editor's error for a workspace whose state cannot be opened (lsp/state_errors.py).
    unavailable: Callable[[H, StateError], Exception]
    # A runtime was built: its events reach the editor, the settings in force apply to it.
    runtime_built: Callable[[H, AgentRuntime], None]
    # A folder's definitions were (re)loaded: their errors are reported.
    definitions_loaded: Callable[[H, Path, AgentRegistry], None]
    # Imports the feature modules a first run needs (called on a worker thread).
    import_features: Callable[[], None]


@loads_code
def load_registry_off_loop(root: Path | None, settings: EngineSettings) -> AgentRegistry:
    """Agent definitions of a folder (None: built-ins and the user's own only), on a worker thread."""
    from agentls.core.engine import load_registry

    return load_registry(root, settings)


@loads_code
def _build_runtime(
    root: Path,
    settings: EngineSettings,
    registry: AgentRegistry,
    approver: Approver,
    import_features: Callable[[], None],
) -> AgentRuntime:
    # Imported here, on the worker thread, so the event loop never waits for the modules.
    import agentls.core.create
    import agentls.core.parallel  # noqa: F401
    from agentls.core.engine import build_runtime

    import_features()

    return build_runtime(root, settings, registry=registry, approver=approver)


@loads_code
def _warm_model_backend(runtime: AgentRuntime, settings: EngineSettings) -> None:
    """Import the model SDK here too; an OpenAI-compatible client is also built (its TLS setup
    costs ~20 ms). The embedded model's weights still load on its first run (200 MB)."""
    from agentls.core.model_choice import EMBEDDED_NAMES

    wanted = settings.model_settings().resolved()
    embedded = wanted.model is not None and wanted.model.lower() in EMBEDDED_NAMES
    try:
        if not embedded and (wanted.base_url or wanted.api_key):
            model = runtime.model_factory(None)
            warm = getattr(model, "warm", None)
            if warm is not None:
                warm()
        else:
            import llama_cpp  # noqa: F401
    except Exception as exc:  # the first run reports what is wrong with the model
        log.debug("model backend not warmed: %s", exc)


@loads_code
def _warm_up(settings: EngineSettings, import_features: Callable[[], None]) -> None:
    """What the first run of a session would otherwise pay, done while the editor is idle: the
    engine's modules and the model client (SDK import, TLS set-up, tokenizer). No state is
    created: a folder's `.agentls/` still appears only when something runs in it."""
    import agentls.core.create
    import agentls.core.engine  # the runtime and its tools
    import agentls.core.parallel
    import agentls.core.state_check  # noqa: F401
    from agentls.core.model_choice import prepare_quietly

    import_features()
    prepare_quietly(settings.model_settings())


class FolderEngine(Generic[H]):
    """One workspace folder: its agent registry and, once something runs, its runtime."""

    def __init__(self, ls: H, root: Path, hooks: FolderHooks[H]) -> None:
        self.ls = ls
        self.root = root
        self.hooks = hooks
        self.runtime: AgentRuntime | None = None
        self._registry: asyncio.Task[AgentRegistry] | None = None
        self._build: asyncio.Task[AgentRuntime] | None = None
        self._warm: asyncio.Task[None] | None = None

    def _engine_settings(self) -> EngineSettings:
        return self.ls.engine_settings()

    async def registry(self) -> AgentRegistry:
        """The folder's agents, loaded off the loop once (and again after `reload`)."""
        if self._registry is None:
            self._registry = _spawn(self.ls, self._load())
        return await asyncio.shield(self._registry)

    def reload(self) -> None:
        """Reload definitions from disk (off the loop); agents created this session stay."""
        if self._registry is None and self.runtime is None:
            return  # nothing loaded yet: the first use loads the current files
        self._registry = _spawn(self.ls, self._load())

    async def _load(self) -> AgentRegistry:
        fresh = await asyncio.to_thread(load_registry_off_loop, self.root, self._engine_settings())
        self.hooks.definitions_loaded(self.ls, self.root, fresh)
        if self.runtime is not None:
            self._adopt(self.runtime, fresh)
        return fresh

    def _adopt(self, runtime: AgentRuntime, fresh: AgentRegistry) -> None:
        if fresh is runtime.registry:
            return
        for agent in runtime.registry:
            if agent.source == "generated" and agent.definition.name not in fresh:
                fresh.add(agent)
        runtime.registry = fresh

    def loaded_agents(self) -> AgentRegistry | None:
        """The agents in effect when loaded and no reload is pending (what `agents()` would
        return without waiting); None otherwise."""
        task = self._registry
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return self.runtime.registry if self.runtime is not None else task.result()

    async def agents(self) -> AgentRegistry:
        """The agents in effect, after any pending reload (with those created this session)."""
        registry = await self.registry()
        return self.runtime.registry if self.runtime is not None else registry

    async def get_runtime(self) -> AgentRuntime:
        """The folder's runtime, built off the loop on first use; concurrent callers share it.

        A reload of the definitions that is under way finishes first, so a definition saved just
        before a run is in effect for it.
        """
        if self.runtime is not None:
            await self.registry()
            return self.runtime
        if self._build is None:
            self._build = _spawn(self.ls, self._build_runtime())
        try:
            return await asyncio.shield(self._build)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._build = None  # the next request tries again (and reports the error again)
            raise

    async def runtime_for_run(self) -> AgentRuntime:
        """The runtime plus the model SDK's import, both off the loop (a run is about to need it).

        Kept apart from `get_runtime` so that reading the budget or the audit trail loads no SDK.
        """
        runtime = await self.get_runtime()
        if self._warm is None:
            self._warm = _spawn(
                self.ls, asyncio.to_thread(_warm_model_backend, runtime, self._engine_settings())
            )
        await asyncio.shield(self._warm)
        return runtime

    async def _build_runtime(self) -> AgentRuntime:
        from agentls.core.state_check import StateError

        registry = await self.registry()
        try:
            runtime = await asyncio.to_thread(
                _build_runtime,
                self.root,
                self._engine_settings(),
                registry,
                self.hooks.approver(self.ls),
                self.hooks.import_features,
            )
        except StateError as exc:
            raise self.hooks.unavailable(self.ls, exc) from None
        # Tools read what the user sees: open buffers, unsaved changes included.
        runtime.sandbox.overlay = self.ls.buffer_text
        self.runtime = runtime
        # Its events to the editor; settings that changed while it was being built.
        self.hooks.runtime_built(self.ls, runtime)
        self._adopt(runtime, await self.registry())
        return runtime


class Folders(Generic[H]):
    """The open workspace folders by root path; a file belongs to the innermost folder holding it."""

    def __init__(self, ls: H, hooks: FolderHooks[H]) -> None:
        self.ls = ls
        self.hooks = hooks
        self._engines: dict[Path, FolderEngine[H]] = {}

    def roots(self) -> list[Path]:
        """The editor's workspace folders in its order (the root URI for clients without folders)."""
        try:
            ws = self.ls.workspace
        except RuntimeError:  # before initialize
            return []
        roots: list[Path] = []
        for folder in ws.folders.values():
            path = to_fs_path(folder.uri) if folder.uri.startswith("file:") else None
            if path:
                roots.append(Path(path).resolve())
        if not roots and ws.root_path:
            roots.append(Path(ws.root_path).resolve())
        return list(dict.fromkeys(roots))

    def root_of(self, path: Path) -> Path | None:
        holding = [r for r in self.roots() if path == r or r in path.parents]
        return max(holding, key=lambda r: len(r.parts)) if holding else None

    def engine(self, root: Path) -> FolderEngine[H]:
        if root not in self._engines:
            self._engines[root] = FolderEngine(self.ls, root, self.hooks)
        return self._engines[root]

    def engines(self) -> list[FolderEngine[H]]:
        """Engines of the folders used so far."""
        return list(self._engines.values())

    def runtimes(self) -> list[AgentRuntime]:
        return [e.runtime for e in self._engines.values() if e.runtime is not None]

    def for_uri(
        self, command: str, uri: str, argument: str = "uri"
    ) -> tuple[FolderEngine[H], Path]:
        """The folder a file URI belongs to and the file's path; InvalidParams naming the argument."""
        path = self.ls.path_of(uri)
        if path is None:
            raise JsonRpcInvalidParams(
                f"{command}: argument '{argument}' {uri!r} is not a file URI; save the file in a "
                "workspace folder first"
            )
        roots = self.roots()
        if not roots:
            raise JsonRpcInvalidParams(no_folder_message(command))
        root = self.root_of(path)
        if root is None:
            shown = ", ".join(str(r) for r in roots)
            raise JsonRpcInvalidParams(
                f"{command}: argument '{argument}' {uri!r} is outside the workspace folders ({shown})"
            )
        return self.engine(root), path

    def default(self, command: str, uri: str | None = None) -> FolderEngine[H]:
        """The folder of `uri` when given, else the first workspace folder."""
        if uri is not None:
            return self.for_uri(command, uri)[0]
        roots = self.roots()
        if not roots:
            raise JsonRpcInvalidParams(no_folder_message(command))
        return self.engine(roots[0])

    def reload(self) -> None:
        for engine in self._engines.values():
            engine.reload()

    def warm_up(self) -> None:
        """Prepare, on a worker thread, what the first run will need (see `_warm_up`)."""
        settings = self.ls.settings.engine(trusted=self.ls.trusted)
        warming = _spawn(self.ls, asyncio.to_thread(_warm_up, settings, self.hooks.import_features))
        # A folder that has state already gets its runtime too (ledger, audit, crash recovery):
        # nothing is created that is not there.
        for root in self.roots():
            if (root / ".agentls").is_dir():
                engine = self.engine(root)
                _spawn(self.ls, _after(warming, engine.get_runtime()))


def no_folder_message(command: str) -> str:
    return (
        f"{command}: no workspace folder is open; open a folder first (agentls keeps each "
        "folder's budget ledger, audit trail and agents in its .agentls/)"
    )


async def _after(first: Awaitable[object], then: Awaitable[T]) -> T | None:
    """`then` once `first` is done; a failure of either is left to the first real use."""
    try:
        await first
        return await then
    except Exception as exc:
        log.debug("warm-up: %s", exc)
        return None


def _spawn(ls: FolderHost, work: Awaitable[T]) -> asyncio.Task[T]:
    task: asyncio.Task[T] = asyncio.ensure_future(work)
    ls.keep(task)
    return task
