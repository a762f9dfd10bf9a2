"""shutdown, exit and a vanished editor while runs stream: every run ends cancelled in the audit
trail with its spend in the ledger, nothing stays reserved, and after shutdown only `exit` is
answered (other requests get InvalidRequest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import (
    SERVER_COMMAND,
    SERVER_ENV,
    WAIT,
    Editor,
    execute,
    open_session,
    uri_of,
)
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind

RUNS = 3
# Each answer streams one word every 0.2 s for about a minute: the runs are mid-stream at shutdown.
SLOW_ANSWER = Text(" ".join(["word"] * 300), chunk_delay=0.2)


@pytest.fixture
def model() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        server.responder = lambda body: SLOW_ANSWER
        yield server


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(
    lsp_client: LanguageClient,
    workspace: Path,
    initialization_options: dict[str, Any],
    capabilities: types.ClientCapabilities,
    editor: Editor,
) -> AsyncIterator[None]:
    """Like the shared fixture, but each test ends the session itself."""
    await open_session(lsp_client, editor, [workspace], initialization_options, capabilities)
    yield
    server = lsp_client._server
    if server is not None and server.returncode is None:
        server.kill()  # a test that failed half-way: pytest-lsp would wait for it forever


async def start_streaming_runs(
    client: LanguageClient, workspace: Path, editor: Editor
) -> list[asyncio.Task[Any]]:
    """Start RUNS delegations and return once each has streamed some output to the editor."""
    uri = uri_of(workspace / "src" / "app.py")
    calls = [
        asyncio.ensure_future(
            execute(
                client, "agentls.delegate", {"agent": "explain", "goal": f"part {n}", "uri": uri}
            )
        )
        for n in range(RUNS)
    ]
    await editor.wait_until(lambda: len({o["runId"] for o in editor.outputs}) == RUNS, WAIT * 3)
    return calls


def run_ids(editor: Editor) -> set[str]:
    return {o["runId"] for o in editor.outputs}


def assert_cancelled_and_paid(workspace: Path, ids: set[str]) -> None:
    """Each run's closing event says cancelled; the ledger holds exactly what they spent."""
    with AuditStore.for_workspace(workspace) as audit:
        closing = {e.run_id: e for e in audit.runs() if e.run_id in ids}
    assert set(closing) == ids
    assert {e.kind for e in closing.values()} == {EventKind.CANCELLED}
    with TokenBudgeter.for_workspace(workspace) as budget:
        snapshot = budget.snapshot()
        spent = {rid: budget.run_usage(rid).total for rid in ids}
    assert all(spent[rid] > 0 for rid in ids), "streamed tokens are billed, so they are committed"
    assert all(closing[rid].usage.total == spent[rid] for rid in ids)
    assert snapshot.used == sum(spent.values())
    assert snapshot.reserved == 0


async def test_shutdown_cancels_every_run_and_records_its_spend(
    client: LanguageClient, workspace: Path, editor: Editor
) -> None:
    calls = await start_streaming_runs(client, workspace, editor)

    assert await client.shutdown_async(None) is None

    results = await asyncio.wait_for(asyncio.gather(*calls), WAIT)
    assert [r["status"] for r in results] == ["cancelled"] * RUNS
    assert_cancelled_and_paid(workspace, run_ids(editor))
    client.exit(None)
    assert await asyncio.wait_for(client._server.wait(), WAIT) == 0  # type: ignore[union-attr]


async def test_requests_after_shutdown_get_invalid_request(
    client: LanguageClient, workspace: Path, editor: Editor
) -> None:
    await client.shutdown_async(None)

    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(execute(client, "agentls.listAgents"), WAIT)
    assert info.value.code == -32600
    assert "shut down" in info.value.message
    client.exit(None)
    assert await asyncio.wait_for(client._server.wait(), WAIT) == 0  # type: ignore[union-attr]


async def test_exit_without_shutdown_still_records_every_run(
    client: LanguageClient, workspace: Path, editor: Editor
) -> None:
    await start_streaming_runs(client, workspace, editor)

    client.exit(None)

    # Exit without shutdown is abrupt (status 1, as LSP says), but nothing is lost.
    assert await asyncio.wait_for(client._server.wait(), WAIT) == 1  # type: ignore[union-attr]
    assert_cancelled_and_paid(workspace, run_ids(editor))


async def test_exit_without_shutdown_ends_the_process_with_status_1(
    client: LanguageClient,
) -> None:
    client.exit(None)

    assert await asyncio.wait_for(client._server.wait(), WAIT) == 1  # type: ignore[union-attr]


async def test_exit_after_shutdown_ends_the_process_with_status_0(client: LanguageClient) -> None:
    await asyncio.wait_for(client.shutdown_async(None), WAIT)
    client.exit(None)

    assert await asyncio.wait_for(client._server.wait(), WAIT) == 0  # type: ignore[union-attr]


async def test_a_second_shutdown_is_answered_with_invalid_request(client: LanguageClient) -> None:
    await asyncio.wait_for(client.shutdown_async(None), WAIT)

    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(client.shutdown_async(None), WAIT)
    assert info.value.code == types.ErrorCodes.InvalidRequest.value
    assert "shut down" in info.value.message
    client.exit(None)
    assert await asyncio.wait_for(client._server.wait(), WAIT) == 0  # type: ignore[union-attr]


async def test_editor_disconnecting_mid_run_cancels_runs_and_ends_the_server(
    client: LanguageClient, workspace: Path, editor: Editor
) -> None:
    await start_streaming_runs(client, workspace, editor)
    server = client._server
    assert server is not None and server.stdin is not None

    server.stdin.close()  # the editor went away: its end of the pipe is closed

    assert await asyncio.wait_for(server.wait(), WAIT) == 0
    assert_cancelled_and_paid(workspace, run_ids(editor))
