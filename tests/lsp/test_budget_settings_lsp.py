"""Budget settings in the language server: a settings change writes its limits to the ledger off
the event loop (another process may hold the ledger's lock), and the wait bound and the minimum
answer reach the runs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import WAIT, Editor, execute, open_file
from tests.lsp.test_engine_off_loop import code_action_titles
from tests.rig.scripted_openai import ScriptedOpenAI, Text


async def test_requests_are_answered_while_new_limits_wait_for_a_locked_ledger(
    client: LanguageClient, editor: Editor, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("fine"))
    first = await execute(client, "agentls.delegate", {"agent": "explain", "uri": uri})
    assert first["status"] == "finished"  # the folder's ledger exists and its runtime is built
    holder = sqlite3.connect(workspace / ".agentls" / "ledger.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writes to the ledger for a while
    pulls = editor.configuration_requests
    try:
        client.set_configuration({"budget": {"total": 3000}}, section="agentls")
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await editor.wait_until(lambda: editor.configuration_requests > pulls)

        titles = await asyncio.wait_for(code_action_titles(client, uri), WAIT)
        agents = await asyncio.wait_for(execute(client, "agentls.listAgents"), WAIT)

        assert "Ask explain: Explain selection" in titles
        assert "explain" in [a["name"] for a in agents]
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    async def limit_applied() -> None:
        while (await execute(client, "agentls.budget"))["limit"] != 3000:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(limit_applied(), WAIT)


@pytest.mark.parametrize(
    "settings", [{"budget": {"total": 1000, "minOutputTokens": 1000}}], indirect=True
)
async def test_the_minimum_answer_setting_reaches_runs(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    result = await execute(client, "agentls.delegate", {"agent": "explain", "uri": uri})

    assert result["status"] == "budget_exceeded"
    assert model.requests == []
