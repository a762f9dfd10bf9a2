"""agentls.audit filters by time and keeps the latest `limit` events, in the store (a long history
is never read whole), oldest first."""

from __future__ import annotations

import time
from pathlib import Path

from pytest_lsp import LanguageClient
from tests.lsp.harness import execute, open_file
from tests.rig.scripted_openai import ScriptedOpenAI, Text


async def test_since_and_limit_select_the_latest_events(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("first"), Text("second"))
    first = await execute(client, "agentls.delegate", {"agent": "explain", "uri": uri})
    between = time.time()
    second = await execute(client, "agentls.delegate", {"agent": "explain", "uri": uri})

    latest = await execute(client, "agentls.audit", {"limit": 2})
    recent = await execute(client, "agentls.audit", {"since": between})

    assert [e["runId"] for e in latest] == [second["runId"]] * 2
    assert latest[-1]["kind"] == "finished"
    assert {e["runId"] for e in recent} == {second["runId"]}
    assert first["runId"] not in {e["runId"] for e in recent}
    assert await execute(client, "agentls.audit", {"since": time.time() + 3600}) == []
