"""A goal or a selection of a million characters over LSP: refused with a sentence naming the
argument and its bound, before it is tokenized or reaches the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient
from tests.lsp.harness import execute, lsp_range, open_file
from tests.rig.scripted_openai import ScriptedOpenAI

from agentls.core.bounds import MAX_GOAL_CHARS

HUGE = "explain " * 125_000  # 1,000,000 characters


@pytest.mark.parametrize(
    ("command", "arguments", "named"),
    [
        pytest.param("agentls.delegate", {"agent": "explain", "goal": HUGE}, "goal", id="delegate"),
        pytest.param(
            "agentls.delegateParallel",
            {"tasks": [{"agent": "explain", "goal": HUGE}]},
            "tasks.0.goal",
            id="parallel",
        ),
        pytest.param("agentls.createAgent", {"prompt": HUGE}, "prompt", id="create"),
    ],
)
async def test_a_goal_of_a_million_characters_is_an_argument_error_naming_it(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    command: str,
    arguments: dict[str, object],
    named: str,
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    if command == "agentls.delegate":
        arguments = {**arguments, "uri": uri}
    with pytest.raises(JsonRpcException) as caught:
        await execute(client, command, arguments)
    assert f"argument '{named}'" in caught.value.message
    assert f"at most {MAX_GOAL_CHARS} characters" in caught.value.message
    assert not model.requests
    assert await execute(client, "agentls.listAgents")


async def test_a_selection_of_a_million_characters_is_refused_naming_it(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    big = workspace / "src" / "big.py"
    big.write_text("x = 1\n" * 200_000)  # 1,200,000 characters
    uri = open_file(client, big)
    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "explain", "goal": "g", "uri": uri, "range": lsp_range((0, 0), (200_000, 0))},
    )
    assert result["status"] == "failed"
    assert "the selection is 1,200,000 characters" in result["error"]
    assert not model.requests
