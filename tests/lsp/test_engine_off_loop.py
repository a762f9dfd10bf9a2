"""Nothing a folder's engine does on first use stalls the server: selecting text needs only the
agents (no `.agentls/`, no database, no recovery), and while the first delegation builds the engine
(imports, databases, crash recovery) other requests are answered."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import WAIT, execute, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.core.audit import AuditStore


async def code_action_titles(client: LanguageClient, uri: str) -> list[str]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=2, character=0)
            ),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    return [a.title for a in result or []]


async def test_selecting_text_creates_no_state(client: LanguageClient, workspace: Path) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    titles = await code_action_titles(client, uri)

    assert "Ask review: Review selection" in titles
    assert not (workspace / ".agentls").exists()


async def test_state_is_created_by_the_first_run(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("fine"))

    result = await execute(client, "agentls.delegate", {"agent": "explain", "uri": uri})

    assert result["status"] == "finished"
    assert (workspace / ".agentls" / "audit.db").is_file()


async def test_requests_are_answered_while_the_first_delegation_waits_for_the_databases(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    """Another process holds the audit store's write lock: building the engine (crash recovery)
    waits for it, and the server keeps answering meanwhile."""
    AuditStore.for_workspace(workspace).close()
    holder = sqlite3.connect(workspace / ".agentls" / "audit.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("fine"))
    delegation = asyncio.ensure_future(
        execute(client, "agentls.delegate", {"agent": "explain", "uri": uri})
    )
    try:
        # The server read the request before it answers this one (messages are handled in order).
        titles = await asyncio.wait_for(code_action_titles(client, uri), WAIT)
        agents = await asyncio.wait_for(execute(client, "agentls.listAgents"), WAIT)
        assert "Ask explain: Explain selection" in titles
        assert "explain" in [a["name"] for a in agents]
        assert not delegation.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    result = await asyncio.wait_for(delegation, WAIT)
    assert result["status"] == "finished"


async def test_concurrent_first_requests_share_one_engine(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("one"), Text("two"))

    first, second, budget = await asyncio.gather(
        execute(client, "agentls.delegate", {"agent": "explain", "uri": uri}),
        execute(client, "agentls.delegate", {"agent": "explain", "uri": uri}),
        execute(client, "agentls.budget"),
    )

    assert {first["status"], second["status"]} == {"finished"}
    # One ledger saw both runs: the usage the budget reports afterwards covers both.
    after = await execute(client, "agentls.budget")
    assert after["used"] == first["usage"]["total"] + second["usage"]["total"]
    assert budget["limit"] == after["limit"]
