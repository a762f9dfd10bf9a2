"""textDocument/codeAction: one action per agent that offers one, on a non-empty selection only."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text

OFFERING_AGENTS = ["document", "explain", "refactor", "review", "write-tests"]


def selection(start: tuple[int, int], end: tuple[int, int]) -> types.Range:
    return types.Range(
        start=types.Position(line=start[0], character=start[1]),
        end=types.Position(line=end[0], character=end[1]),
    )


async def code_actions(
    client: LanguageClient, uri: str, rng: types.Range, only: list[str] | None = None
) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=[], only=only),
        )
    )
    actions = list(result or [])
    assert all(isinstance(a, types.CodeAction) for a in actions)
    return actions  # type: ignore[return-value]


async def test_a_selection_offers_one_action_per_agent_that_offers_one(
    client: LanguageClient, workspace: Path
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    actions = await code_actions(client, uri, selection((0, 0), (5, 0)))

    assert [a.command.arguments[0]["agent"] for a in actions if a.command] == OFFERING_AGENTS
    titles = [a.title for a in actions]
    assert "Ask review: Review selection" in titles
    assert all(a.kind == "refactor.agentls" for a in actions)


async def test_each_action_delegates_its_range(client: LanguageClient, workspace: Path) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    actions = await code_actions(client, uri, selection((1, 4), (3, 25)))

    review = next(a for a in actions if a.title.startswith("Ask review"))
    assert review.command is not None
    assert review.command.command == "agentls.delegate"
    assert list(review.command.arguments or []) == [
        {
            "agent": "review",
            "goal": "Reviews code for bugs, risky constructs and unclear naming",
            "uri": uri,
            "range": {
                "start": {"line": 1, "character": 4},
                "end": {"line": 3, "character": 25},
            },
        }
    ]


async def test_an_empty_selection_offers_nothing(client: LanguageClient, workspace: Path) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    assert await code_actions(client, uri, selection((2, 3), (2, 3))) == []


async def test_the_only_filter_is_respected(client: LanguageClient, workspace: Path) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    rng = selection((0, 0), (5, 0))

    assert await code_actions(client, uri, rng, only=[types.CodeActionKind.QuickFix]) == []
    refactors = await code_actions(client, uri, rng, only=[types.CodeActionKind.Refactor])
    assert len(refactors) == len(OFFERING_AGENTS)


async def test_a_file_outside_the_workspace_offers_nothing(
    client: LanguageClient, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("x = 1\ny = 2\n")
    uri = open_file(client, outside)

    assert await code_actions(client, uri, selection((0, 0), (1, 0))) == []


async def test_a_workspace_agent_with_a_code_action_is_offered(
    client: LanguageClient, workspace: Path
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "security.yaml").write_text(
        "name: security\n"
        "description: Looks for injection and unsafe deserialization\n"
        "instructions: You audit code for security problems.\n"
        "code_action: Audit selection\n"
    )
    uri = open_file(client, workspace / "src" / "app.py")

    actions = await code_actions(client, uri, selection((0, 0), (5, 0)))

    assert "Ask security: Audit selection" in [a.title for a in actions]


async def test_running_the_action_delegates_the_selected_code(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    actions = await code_actions(client, uri, selection((7, 0), (9, 0)))
    explain = next(a for a in actions if a.title.startswith("Ask explain"))
    assert explain.command is not None
    model.enqueue(Text("Divides the sum by the count; fails on an empty list."))

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command=explain.command.command, arguments=explain.command.arguments
        )
    )

    assert result["status"] == "finished"
    assert result["text"] == "Divides the sum by the count; fails on an empty list."
    prompt = model.requests[0]["messages"][-1]["content"]
    assert "def mean(values):" in prompt
    assert "def total" not in prompt
    assert "(lines 8-9)" in prompt
