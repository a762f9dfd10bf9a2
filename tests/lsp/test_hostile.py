"""Hostile input over LSP: a catastrophic regex in a tool call, an anchor-bomb definition file and
absurd numbers leave the server answering, with errors that name what is wrong."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient
from tests.lsp.harness import APP, Editor, execute, lsp_range, open_file, uri_of
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import Hang, ScriptedOpenAI, Text, ToolCall
from tests.test_hostile_definitions import BOMB

EVIL = ("a" * 40 + "!\n") * 20


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    (root / "src" / "evil.txt").write_text(EVIL)
    (root / ".agentls" / "agents").mkdir(parents=True)
    (root / ".agentls" / "agents" / "bomb.yaml").write_text(BOMB)
    return root.resolve()


async def test_a_catastrophic_search_leaves_list_agents_and_cancel_answering(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    model.enqueue(ToolCall("search", {"query": "(a+)+$"}), Hang(60, Text("too late")))
    uri = uri_of(workspace / "src" / "app.py")
    run = asyncio.ensure_future(
        execute(client, "agentls.delegate", {"agent": "research", "goal": "find", "uri": uri})
    )
    # The search came back to the model: the server was not pinned by the pattern.
    await aeventually(lambda: len(model.requests) == 2)
    tool_message = model.requests[1]["messages"][-1]
    assert "(no matches)" in tool_message["content"]
    agents = await execute(client, "agentls.listAgents")
    assert "research" in [a["name"] for a in agents]
    cancelled = await execute(client, "agentls.cancel")
    assert len(cancelled["cancelled"]) == 1
    result = await run
    assert result["status"] == "cancelled"


async def test_opening_the_anchor_bomb_publishes_a_diagnostic_and_the_server_answers(
    client: LanguageClient, workspace: Path, editor: Editor
) -> None:
    bomb = workspace / ".agentls" / "agents" / "bomb.yaml"
    uri = open_file(client, bomb, language="yaml")
    await editor.wait_until(lambda: uri in client.diagnostics)
    (diagnostic,) = client.diagnostics[uri]
    assert "aliases" in diagnostic.message
    assert diagnostic.range.start.line == 5
    agents = await execute(client, "agentls.listAgents")
    assert "explain" in [a["name"] for a in agents]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        pytest.param({"range": lsp_range((2**40, 0), (2**40, 1))}, "range.start.line", id="line"),
        pytest.param(
            {"range": lsp_range((0, 0), (0, 2**40))}, "range.end.character", id="character"
        ),
        pytest.param({"budget": 10**23}, "budget", id="budget"),
    ],
)
async def test_a_huge_number_is_an_argument_error_naming_it(
    client: LanguageClient, workspace: Path, arguments: dict[str, object], named: str
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    with pytest.raises(JsonRpcException) as caught:
        await execute(
            client, "agentls.delegate", {"agent": "explain", "goal": "g", "uri": uri, **arguments}
        )
    assert f"argument '{named}'" in caught.value.message
    assert "internal error" not in caught.value.message.lower()
    assert await execute(client, "agentls.listAgents")


async def test_a_huge_budget_limit_is_an_argument_error(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException) as caught:
        await execute(client, "agentls.budget", {"action": "set", "limit": 10**23})
    assert "argument 'limit'" in caught.value.message
    snapshot = await execute(client, "agentls.budget")
    assert snapshot["limit"] is None


async def test_a_budget_for_a_misspelt_agent_is_refused_with_a_suggestion(
    client: LanguageClient,
) -> None:
    with pytest.raises(JsonRpcException) as caught:
        await execute(client, "agentls.budget", {"action": "set", "limit": 500, "agent": "reveiw"})
    assert "argument 'agent' 'reveiw'" in caught.value.message
    assert "did you mean 'review'" in caught.value.message
    snapshot = await execute(client, "agentls.budget")
    assert "reveiw" not in snapshot["agents"]


async def test_a_budget_for_an_unknown_agent_is_set_when_allowed(client: LanguageClient) -> None:
    snapshot = await execute(
        client,
        "agentls.budget",
        {"action": "set", "limit": 500, "agent": "later", "allowUnknownAgent": True},
    )
    assert snapshot["agents"]["later"]["limit"] == 500
