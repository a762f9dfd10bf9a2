"""Agent definition files in the editor: diagnostics at the exact line and column while they are
edited, and the registry reloading when they change on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, open_file, uri_of

GOOD = "name: checker\ndescription: Checks things\ninstructions: Check.\n"


@pytest.fixture
def agents_folder(workspace: Path) -> Path:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    return folder


async def published(client: LanguageClient, editor: Editor, uri: str) -> list[types.Diagnostic]:
    await editor.wait_until(lambda: uri in client.diagnostics)
    return list(client.diagnostics[uri])


def at(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def type_into(client: LanguageClient, uri: str, version: int, text: str) -> None:
    """The user replaces the whole buffer with `text` (its `version`th state)."""
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


@pytest.mark.parametrize(
    ("text", "start", "message"),
    [
        pytest.param(
            GOOD + "max_turns: lots\n",
            at(3, 0),
            "max_turns: Input should be a valid integer",
            id="wrong-type",
        ),
        pytest.param(
            GOOD + "mode: tools\ntools: [read_file, fly]\n",
            at(4, 19),
            "tools.1: Value error, unknown tool 'fly'",
            id="unknown-tool-in-a-list",
        ),
        pytest.param(
            "name: checker\ncolour: red\ndescription: x\ninstructions: y\n",
            at(1, 0),
            "colour: unknown field; allowed fields are name, description",
            id="unknown-field",
        ),
        pytest.param(
            "name: checker\ndescription: Checks things\n  instructions: x\n",
            at(2, 14),
            "invalid YAML: mapping values are not allowed here",
            id="yaml-syntax",
        ),
        pytest.param(
            "name: Checker Agent\ndescription: x\ninstructions: y\n",
            at(0, 0),
            "name: String should match pattern",
            id="bad-name",
        ),
    ],
)
async def test_an_error_is_reported_at_its_line_and_column(
    client: LanguageClient,
    editor: Editor,
    agents_folder: Path,
    text: str,
    start: types.Position,
    message: str,
) -> None:
    path = agents_folder / "checker.yaml"
    path.write_text(text)

    uri = open_file(client, path, language="yaml")
    (diagnostic,) = await published(client, editor, uri)

    assert diagnostic.range.start == start
    assert diagnostic.message.startswith(message)
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.source == "agentls"


async def test_a_claude_agent_error_counts_the_front_matter_fence(
    client: LanguageClient, editor: Editor, workspace: Path
) -> None:
    folder = workspace / ".claude" / "agents"
    folder.mkdir(parents=True)
    path = folder / "helper.md"
    path.write_text("---\nname: helper\ndescription: helps\nbudget: plenty\n---\nYou help.\n")

    uri = open_file(client, path, language="markdown")
    (diagnostic,) = await published(client, editor, uri)

    assert diagnostic.range.start == at(3, 0)
    assert diagnostic.message.startswith("budget: ")


async def test_diagnostics_follow_the_buffer_as_it_is_edited(
    client: LanguageClient, editor: Editor, agents_folder: Path
) -> None:
    path = agents_folder / "checker.yaml"
    path.write_text(GOOD)
    uri = open_file(client, path, language="yaml")
    assert await published(client, editor, uri) == []

    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at(3, 0), end=at(3, 0)), text="max_turns: 0\n"
                )
            ],
        )
    )
    broken = await editor.wait_until(lambda: list(client.diagnostics[uri]))
    assert broken[0].range.start == at(3, 0)
    assert broken[0].message.startswith("max_turns: ")

    type_into(client, uri, 3, GOOD)
    await editor.wait_until(lambda: list(client.diagnostics[uri]) == [])


async def test_other_files_get_no_diagnostics(
    client: LanguageClient, editor: Editor, workspace: Path, agents_folder: Path
) -> None:
    app = open_file(client, workspace / "src" / "app.py")
    path = agents_folder / "checker.yaml"
    path.write_text(GOOD + "max_turns: lots\n")
    definition = open_file(client, path, language="yaml")

    await published(client, editor, definition)

    assert app not in client.diagnostics


async def test_the_server_watches_definition_files(client: LanguageClient, editor: Editor) -> None:
    registration = await editor.wait_until(
        lambda: next(
            (
                r
                for r in editor.registrations
                if r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES
            ),
            None,
        )
    )

    globs = [w["globPattern"] for w in registration.register_options["watchers"]]
    assert globs == ["**/.agentls/agents/*", "**/.claude/agents/*.md"]


async def agent_names(client: LanguageClient) -> set[str]:
    return {a["name"] for a in await execute(client, "agentls.listAgents")}


def file_changed(client: LanguageClient, path: Path, kind: types.FileChangeType) -> None:
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(changes=[types.FileEvent(uri=uri_of(path), type=kind)])
    )


async def test_the_registry_reloads_when_a_definition_file_changes_on_disk(
    client: LanguageClient, agents_folder: Path
) -> None:
    assert "checker" not in await agent_names(client)
    path = agents_folder / "checker.yaml"

    path.write_text(GOOD + "code_action: Check selection\n")
    file_changed(client, path, types.FileChangeType.Created)
    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}
    assert agents["checker"]["source"] == "workspace"
    assert agents["checker"]["codeAction"] == "Check selection"

    path.unlink()
    file_changed(client, path, types.FileChangeType.Deleted)
    assert "checker" not in await agent_names(client)


async def test_a_workspace_definition_overrides_a_builtin_on_reload(
    client: LanguageClient, agents_folder: Path
) -> None:
    await agent_names(client)
    path = agents_folder / "review.yaml"
    path.write_text("name: review\ndescription: Our own review\ninstructions: House rules.\n")
    file_changed(client, path, types.FileChangeType.Created)

    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}

    assert agents["review"]["description"] == "Our own review"
    assert agents["review"]["source"] == "workspace"


async def test_saving_a_definition_file_reloads_the_registry(
    client: LanguageClient, agents_folder: Path
) -> None:
    path = agents_folder / "checker.yaml"
    path.write_text(GOOD)
    uri = open_file(client, path, language="yaml")
    assert "checker" in await agent_names(client)

    path.write_text(GOOD.replace("Checks things", "Checks everything"))
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )

    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}
    assert agents["checker"]["description"] == "Checks everything"


async def test_a_broken_file_on_disk_is_reported_in_the_log_and_skipped(
    client: LanguageClient, editor: Editor, agents_folder: Path
) -> None:
    await agent_names(client)
    path = agents_folder / "checker.yaml"
    path.write_text(GOOD + "max_turns: lots\n")

    file_changed(client, path, types.FileChangeType.Created)

    assert "checker" not in await agent_names(client)
    warning = await editor.wait_until(
        lambda: next((m for m in client.log_messages if str(path) in m.message), None)
    )
    assert warning.type == types.MessageType.Warning
    assert f"{path}:4:1: max_turns: " in warning.message


def two_files_naming_one_agent(agents_folder: Path) -> tuple[Path, Path]:
    """a-first.yaml (kept: it loads first) and b-second.yaml (ignored) both define `same`."""
    first = agents_folder / "a-first.yaml"
    second = agents_folder / "b-second.yaml"
    first.write_text("name: same\ndescription: First\ninstructions: One.\n")
    second.write_text("description: Second\ninstructions: Two.\nname: same\n")
    return first, second


async def test_a_file_whose_agent_name_is_taken_gets_an_error_naming_the_other_file(
    client: LanguageClient, editor: Editor, agents_folder: Path
) -> None:
    first, second = two_files_naming_one_agent(agents_folder)

    uri = open_file(client, second, language="yaml")
    (diagnostic,) = await published(client, editor, uri)

    assert diagnostic.range.start == at(2, 0)
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.message == (
        f"name: agent 'same' is already defined in {first}:1; rename one of them "
        "(this file is ignored)"
    )


async def test_the_file_that_is_kept_warns_of_the_one_ignored(
    client: LanguageClient, editor: Editor, agents_folder: Path
) -> None:
    first, second = two_files_naming_one_agent(agents_folder)

    uri = open_file(client, first, language="yaml")
    (diagnostic,) = await published(client, editor, uri)

    assert diagnostic.range.start == at(0, 0)
    assert diagnostic.severity == types.DiagnosticSeverity.Warning
    assert f"also defined in {second}:3, which is ignored" in diagnostic.message


async def test_renaming_the_agent_in_the_buffer_clears_the_clash(
    client: LanguageClient, editor: Editor, agents_folder: Path
) -> None:
    _, second = two_files_naming_one_agent(agents_folder)
    uri = open_file(client, second, language="yaml")
    assert len(await published(client, editor, uri)) == 1

    type_into(client, uri, 2, second.read_text().replace("name: same", "name: unique"))

    await editor.wait_until(lambda: list(client.diagnostics[uri]) == [])


async def test_renaming_the_other_file_on_disk_clears_the_open_files_clash(
    client: LanguageClient, editor: Editor, agents_folder: Path
) -> None:
    first, second = two_files_naming_one_agent(agents_folder)
    uri = open_file(client, first, language="yaml")
    assert len(await published(client, editor, uri)) == 1

    second.write_text(second.read_text().replace("name: same", "name: unique"))
    file_changed(client, second, types.FileChangeType.Changed)

    await editor.wait_until(lambda: list(client.diagnostics[uri]) == [])
