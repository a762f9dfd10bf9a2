"""The editor side of the LSP end-to-end tests: the server command and environment, what the
test client records beyond pytest-lsp's own lists, and helpers to open files and run commands.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from lsprotocol import types
from pygls.protocol import JsonRPCNotification
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

# The server's user folder (~/.config/agentls/agents) must not leak into tests: it gets an empty HOME.
HOME = Path(tempfile.mkdtemp(prefix="agentls-lsp-home-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)
SERVER_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTLS_"))} | {
    "HOME": str(HOME)
}
SERVER_COMMAND = [sys.executable, "-m", "agentls", "serve"]

APP = """\
def total(prices, discount):
    result = 0
    for p in prices:
        result = result + p
    return result - result * discount


def mean(values):
    return sum(values) / len(values)
"""

# Timeouts: a run against the scripted model takes milliseconds; allow for a slow CI.
WAIT = 10.0


@dataclass
class Editor:
    """What the server sent to the editor besides the standard notifications pytest-lsp records."""

    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    output_times: list[float] = field(default_factory=list)  # monotonic arrival of each output
    budgets: list[dict[str, Any]] = field(default_factory=list)
    edit_requests: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)
    registrations: list[types.Registration] = field(default_factory=list)
    configuration_requests: int = 0
    # How the editor answers workspace/applyEdit.
    accept_edits: bool = True
    _waiters: set[asyncio.Event] = field(default_factory=set)

    def note(self) -> None:
        """Something arrived: wake whoever waits."""
        for waiter in self._waiters:
            waiter.set()

    async def wait_until(self, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Wait for the server's messages to make `check()` truthy; returns its value.

        Woken by every agentls notification and request; also looks every 20 ms, for what
        pytest-lsp records itself (progress, log lines, diagnostics).
        """

        async def until() -> Any:
            while not (value := check()):
                waiter = asyncio.Event()
                self._waiters.add(waiter)
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.wait(), 0.02)
                finally:
                    self._waiters.discard(waiter)
            return value

        return await asyncio.wait_for(until(), timeout)

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["runId"] == run_id]

    def kinds(self, run_id: str) -> list[str]:
        return [e["kind"] for e in self.run_events(run_id)]

    def output_text(self, run_id: str) -> str:
        return "".join(o["delta"] for o in self.outputs if o["runId"] == run_id)


def code_action_or_command(converter: Any) -> Callable[[Any, Any], Any]:
    """lsprotocol 2025.0.0 turns a CodeAction carrying a command into a broken Command: pick by shape."""

    def structure(obj: Any, _: Any) -> Any:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    return structure


def keep_agentls_params_raw(converter: Any) -> Callable[[Any, Any], Any]:
    """agentls/* notification params stay plain dicts (pygls would make namedtuples of them,
    renaming keys such as agent names that are not Python identifiers)."""
    default = converter.get_structure_hook(JsonRPCNotification)

    def structure(obj: Any, cls: Any) -> Any:
        if str(obj.get("method", "")).startswith("agentls/"):
            return cls(**obj)
        return default(obj, cls)

    return structure


def default_capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True, show_message=None),
        workspace=types.WorkspaceClientCapabilities(
            configuration=True,
            apply_edit=True,
            workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
            did_change_configuration=types.DidChangeConfigurationClientCapabilities(
                dynamic_registration=False
            ),
            did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                dynamic_registration=True
            ),
        ),
        text_document=types.TextDocumentClientCapabilities(
            code_action=types.CodeActionClientCapabilities(
                code_action_literal_support=types.ClientCodeActionLiteralOptions(
                    code_action_kind=types.ClientCodeActionKindOptions(
                        value_set=[types.CodeActionKind.Refactor]
                    )
                )
            ),
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
        ),
    )


def register_editor(lsp_client: LanguageClient, editor: Editor) -> None:
    converter = lsp_client.protocol._converter
    converter.register_structure_hook(
        Union[types.Command, types.CodeAction],  # noqa: UP007 (the hook is keyed by this form)
        code_action_or_command(converter),
    )
    converter.register_structure_hook(JsonRPCNotification, keep_agentls_params_raw(converter))

    for method, records in (
        ("agentls/event", editor.events),
        ("agentls/output", editor.outputs),
        ("agentls/budget", editor.budgets),
    ):

        def record(params: Any, records: list[dict[str, Any]] = records) -> None:
            if records is editor.outputs:
                editor.output_times.append(time.monotonic())
            records.append(params)
            editor.note()

        lsp_client.feature(method)(record)

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        editor.edit_requests.append(params)
        editor.note()
        if editor.accept_edits:
            return types.ApplyWorkspaceEditResult(applied=True)
        return types.ApplyWorkspaceEditResult(
            applied=False, failure_reason="the user declined the edit"
        )

    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(params: types.RegistrationParams) -> None:
        editor.registrations.extend(params.registrations)
        editor.note()

    # pytest-lsp answers workspace/configuration through this method, once per item.
    get_configuration = lsp_client.get_configuration

    def counted_get_configuration(**kwargs: Any) -> Any:
        editor.configuration_requests += 1
        editor.note()
        return get_configuration(**kwargs)

    lsp_client.get_configuration = counted_get_configuration  # type: ignore[method-assign]


async def open_session(
    lsp_client: LanguageClient,
    editor: Editor,
    folders: list[Path],
    initialization_options: dict[str, Any],
    capabilities: types.ClientCapabilities | None = None,
    editor_settings: dict[str, Any] | None = None,
) -> None:
    """Register the editor on the client and initialize the server with `folders` open (the
    first is also the root URI; none opens no folder)."""
    register_editor(lsp_client, editor)
    lsp_client.set_configuration(editor_settings or {}, section="agentls")
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities or default_capabilities(),
            root_uri=uri_of(folders[0]) if folders else None,
            workspace_folders=[types.WorkspaceFolder(uri=uri_of(f), name=f.name) for f in folders]
            or None,
            initialization_options=initialization_options,
        )
    )


def uri_of(path: Path) -> str:
    uri = from_fs_path(str(path))
    assert uri is not None
    return uri


def open_file(client: LanguageClient, path: Path, language: str = "python") -> str:
    uri = uri_of(path)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=path.read_text()
            )
        )
    )
    return uri


def lsp_range(start: tuple[int, int], end: tuple[int, int]) -> dict[str, Any]:
    return {
        "start": {"line": start[0], "character": start[1]},
        "end": {"line": end[0], "character": end[1]},
    }


async def execute(client: LanguageClient, command: str, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=list(arguments))
    )
