"""Agent definition files in the editor: diagnostics with exact line and column while they are
edited, and a registry reload when they change on disk.

An open file whose agent name another file of the same source also uses gets a diagnostic on its
`name` line naming that file and line: an error on the file that is ignored, a warning on the one
that is kept. The clash is judged from the buffer's name against the files on disk, and again
for every open definition file whenever the registry reloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from agentls.core.definitions import parse_definition
from agentls.core.lines import line_body, split_lines

if TYPE_CHECKING:
    from agentls.core.registry import AgentRegistry
    from agentls.lsp.server import AgentLanguageServer

WATCH_GLOBS = ("**/.agentls/agents/*", "**/.claude/agents/*.md")
SUFFIXES = (".yaml", ".yml", ".md")


def definition_kind(ls: AgentLanguageServer, path: Path | None) -> str | None:
    """'agentls' or 'claude' when the path is a definition file of this workspace, else None."""
    if path is None or path.suffix not in SUFFIXES:
        return None
    parent = path.parent
    if parent.name == "agents" and parent.parent.name == ".agentls":
        return "agentls"
    if parent.name == "agents" and parent.parent.name == ".claude" and path.suffix == ".md":
        return "claude"
    folders = [Path(f).expanduser() for f in ls.settings.agent_folders]
    # Relative agent folders belong to each workspace folder, like load_registry reads them.
    root = ls.folders.root_of(path)
    resolved = [f.resolve() for f in folders if f.is_absolute()]
    if root is not None:
        resolved += [(root / f).resolve() for f in folders if not f.is_absolute()]
    return "agentls" if parent.resolve() in resolved else None


def diagnostics_for(
    ls: AgentLanguageServer, uri: str, text: str, registry: AgentRegistry | None = None
) -> list[types.Diagnostic] | None:
    """The buffer's diagnostics, None when it is not a definition file; with the registry of its
    folder, a clash of its agent name with another file is one of them."""
    path = ls.path_of(uri)
    kind = definition_kind(ls, path)
    if kind is None or path is None:
        return None
    definition, errors, name_line = parse_definition(text, path, claude=kind == "claude")
    lines = [line_body(line) for line in split_lines(text)]

    def whole_line_from(line: int, column: int) -> types.Range:
        end = len(lines[line]) if line < len(lines) else column
        return types.Range(
            start=types.Position(line=line, character=column),
            end=types.Position(line=line, character=max(end, column + 1)),
        )

    out = []
    for err in errors:
        message = f"{err.field}: {err.message}" if err.field else err.message
        out.append(
            types.Diagnostic(
                range=whole_line_from(max(err.line - 1, 0), max(err.column - 1, 0)),
                message=message,
                severity=types.DiagnosticSeverity.Error,
                source="agentls",
            )
        )
    clash = registry.name_clash(path, definition.name) if registry and definition else None
    if clash is not None and definition is not None:
        out.append(
            types.Diagnostic(
                range=whole_line_from(max(name_line - 1, 0), 0),
                message=f"name: {clash.message(definition.name)}",
                severity=types.DiagnosticSeverity.Error
                if clash.this_is_ignored
                else types.DiagnosticSeverity.Warning,
                source="agentls",
            )
        )
    return out


def publish_with(ls: AgentLanguageServer, uri: str, registry: AgentRegistry | None) -> None:
    doc = ls.workspace.get_text_document(uri)
    diagnostics = diagnostics_for(ls, uri, doc.source, registry)
    if diagnostics is None:
        return
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=doc.version)
    )


async def publish(ls: AgentLanguageServer, uri: str) -> None:
    """Publish a definition buffer's diagnostics, judged against its folder's registry."""
    path = ls.path_of(uri)
    if definition_kind(ls, path) is None or path is None:
        return
    registry = None
    root = ls.folders.root_of(path)
    if root is not None:
        try:
            registry = await ls.folders.engine(root).registry()
        except Exception as exc:  # the buffer's own diagnostics still count
            ls.show_warning(f"cannot load the agent definitions of {root}: {exc}")
    # What the buffer holds now: it may have changed while the registry loaded.
    publish_with(ls, uri, registry)


def republish_open(ls: AgentLanguageServer, root: Path, registry: AgentRegistry) -> None:
    """Judge the open definition files of a folder again against its freshly loaded registry."""
    for uri in list(ls.workspace.text_documents):
        path = ls.path_of(uri)
        if path is not None and ls.folders.root_of(path) == root and definition_kind(ls, path):
            publish_with(ls, uri, registry)


async def watch_definition_files(ls: AgentLanguageServer) -> None:
    """Ask the client to tell us about definition files changing on disk (dynamic registration)."""
    ws = ls.client_capabilities.workspace
    caps = ws.did_change_watched_files if ws else None
    if not (caps and caps.dynamic_registration):
        return
    watchers = [types.FileSystemWatcher(glob_pattern=g) for g in WATCH_GLOBS]
    try:
        await ls.client_register_capability_async(
            types.RegistrationParams(
                registrations=[
                    types.Registration(
                        id="agentls-definition-files",
                        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                        register_options=types.DidChangeWatchedFilesRegistrationOptions(
                            watchers=watchers
                        ),
                    )
                ]
            )
        )
    except Exception as exc:
        ls.show_warning(f"cannot watch agent definition files ({exc}); save them to reload")


def register(server: AgentLanguageServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def on_open(ls: AgentLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        await publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def on_change(ls: AgentLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        await publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def on_save(ls: AgentLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        if definition_kind(ls, ls.path_of(params.text_document.uri)):
            ls.reload_registry()

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def on_close(ls: AgentLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        if definition_kind(ls, ls.path_of(params.text_document.uri)):
            # Closed files are judged by what is on disk: clear the buffer's diagnostics.
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
            )

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def on_watched(ls: AgentLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        if any(definition_kind(ls, ls.path_of(c.uri)) for c in params.changes):
            ls.reload_registry()


def report_definition_errors(ls: AgentLanguageServer, root: Path, registry: AgentRegistry) -> None:
    """Log a folder's definition errors; its open definition files get diagnostics again."""
    for error in registry.errors:
        ls.window_log_message(
            types.LogMessageParams(type=types.MessageType.Warning, message=f"[agentls] {error}")
        )
    republish_open(ls, root, registry)
