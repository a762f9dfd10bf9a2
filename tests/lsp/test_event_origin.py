"""The language server's events say who ran them, on what, from which front end: `user`,
`workspace` and `frontEnd: "lsp"` on `agentls/event` and in `agentls.audit`."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI, Text


async def test_events_record_the_user_the_workspace_and_the_front_end(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    model.enqueue(Text("It computes totals."))
    result = await execute(
        client, "agentls.delegate", {"agent": "explain", "uri": uri_of(workspace / "src/app.py")}
    )

    events = await execute(client, "agentls.audit", {"runId": result["runId"]})

    me = f"{getpass.getuser()}@{socket.gethostname()}"  # the server's env has no AGENTLS_USER
    assert {e["kind"] for e in events} >= {"started", "model_call", "finished"}
    assert {(e["user"], e["workspace"], e["frontEnd"]) for e in events} == {(me, "ws", "lsp")}
    live = await editor.wait_until(lambda: editor.run_events(result["runId"]))
    assert live[0]["frontEnd"] == "lsp" and live[0]["workspace"] == "ws"
