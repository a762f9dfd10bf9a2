"""One settings model, filled from initializationOptions, then workspace/configuration, then
workspace/didChangeConfiguration (pulled, or pushed by clients that cannot be asked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import WAIT, Editor, default_capabilities, execute, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI, Text


async def budget_limit_becomes(client: LanguageClient, limit: int | None) -> None:
    """Settings apply when the server has the client's answer: ask until the limit shows."""

    async def poll() -> None:
        while (await execute(client, "agentls.budget"))["limit"] != limit:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), WAIT)


async def review(client: LanguageClient, workspace: Path) -> dict[str, Any]:
    return await execute(
        client, "agentls.delegate", {"agent": "review", "uri": uri_of(workspace / "src" / "app.py")}
    )


@pytest.mark.parametrize("settings", [{"maxOutputTokens": 200}], indirect=True)
async def test_initialization_options_configure_the_server(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    model.enqueue(Text("fine"))

    result = await review(client, workspace)

    assert result["status"] == "finished"
    (request,) = model.requests
    assert request["model"] == "scripted-model"
    assert request["max_tokens"] == 200


@pytest.mark.parametrize("settings", [{"budget": {"total": 1500}}], indirect=True)
@pytest.mark.parametrize("initialization_options", ["agentls", "section"], indirect=True)
async def test_initialization_options_may_carry_the_section_in_other_forms(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    settings: dict[str, Any],
    initialization_options: dict[str, Any],
) -> None:
    """`{"agentls": {...}}` (Helix sends its one config object) or the bare section."""
    assert (await execute(client, "agentls.budget"))["limit"] == 1500
    model.enqueue(Text("fine"))

    assert (await review(client, workspace))["status"] == "finished"


@pytest.mark.parametrize("settings", [{"budget": {"total": 1000}}], indirect=True)
@pytest.mark.parametrize("editor_settings", [{"budget": {"total": 2000}, "maxOutputTokens": 300}])
async def test_the_editor_settings_override_initialization_options(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    settings: dict[str, Any],
    editor_settings: dict[str, Any],
) -> None:
    await budget_limit_becomes(client, 2000)
    model.enqueue(Text("fine"))

    await review(client, workspace)

    assert model.requests[0]["max_tokens"] == 300


@pytest.mark.parametrize("editor_settings", [{"budget": {"total": 2000}}])
async def test_a_configuration_change_is_pulled_and_applied(
    client: LanguageClient, editor: Editor, editor_settings: dict[str, Any]
) -> None:
    await budget_limit_becomes(client, 2000)
    pulls = editor.configuration_requests

    client.set_configuration({"budget": {"total": 3000}}, section="agentls")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))

    await budget_limit_becomes(client, 3000)
    assert editor.configuration_requests == pulls + 1


@pytest.mark.parametrize(
    "capabilities",
    [
        types.ClientCapabilities(
            window=default_capabilities().window,
            workspace=types.WorkspaceClientCapabilities(configuration=False, apply_edit=True),
        )
    ],
)
async def test_a_client_that_cannot_be_asked_pushes_its_settings(
    client: LanguageClient, editor: Editor, capabilities: types.ClientCapabilities
) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"agentls": {"budget": {"total": 4000}}})
    )

    await budget_limit_becomes(client, 4000)
    assert editor.configuration_requests == 0


@pytest.fixture
def locked_model() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(require_key="sk-test") as server:
        yield server


@pytest.mark.parametrize("editor_settings", [{"apiKey": "sk-from-a-settings-file"}])
async def test_the_api_key_comes_only_from_initialization_options(
    client: LanguageClient,
    workspace: Path,
    editor: Editor,
    locked_model: ScriptedOpenAI,
    editor_settings: dict[str, Any],
) -> None:
    # Point the server at a model that accepts only the initialization key.
    client.set_configuration({**editor_settings, "baseUrl": locked_model.url}, section="agentls")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await editor.wait_until(lambda: editor.configuration_requests >= 2)
    locked_model.enqueue(Text("fine"))

    result = await review(client, workspace)

    assert result["status"] == "finished", result["error"]
    assert len(locked_model.requests) == 1


@pytest.mark.parametrize(
    "editor_settings", [{"maxParallel": "lots", "budget": {"total": 5000}, "colour": "red"}]
)
async def test_an_invalid_setting_is_named_in_a_warning_and_the_rest_applies(
    client: LanguageClient, editor: Editor, editor_settings: dict[str, Any]
) -> None:
    await budget_limit_becomes(client, 5000)

    warnings = [m for m in client.messages if m.type == types.MessageType.Warning]
    assert any("agentls.maxParallel" in m.message for m in warnings), warnings
    assert all("colour" not in m.message for m in warnings), "unknown settings are ignored"
    agents = await execute(client, "agentls.listAgents")
    assert agents, "the server keeps serving"


@pytest.mark.parametrize("settings", [{"budget": {"total": -3}, "maxDepth": 99}], indirect=True)
async def test_invalid_initialization_options_fall_back_to_defaults(
    client: LanguageClient, settings: dict[str, Any]
) -> None:
    snapshot = await execute(client, "agentls.budget")

    assert snapshot["limit"] is None
    messages = " ".join(m.message for m in client.messages)
    assert "agentls.budget.total" in messages
    assert "agentls.maxDepth" in messages


@pytest.fixture
def second_model() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


async def test_changing_the_model_does_not_break_a_run_in_flight(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    second_model: ScriptedOpenAI,
    editor: Editor,
) -> None:
    model.enqueue(Text("slow and steady " * 20, chunks=20, chunk_delay=0.03))
    first = asyncio.ensure_future(review(client, workspace))
    await editor.wait_until(lambda: editor.outputs)

    client.set_configuration({"baseUrl": second_model.url}, section="agentls")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await editor.wait_until(lambda: editor.configuration_requests >= 2)
    second_model.enqueue(Text("from the second model"))

    assert (await asyncio.wait_for(first, WAIT))["status"] == "finished"
    later = await review(client, workspace)
    assert later["text"] == "from the second model"
    assert len(model.requests) == 1 and len(second_model.requests) == 1
