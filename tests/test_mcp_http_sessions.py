"""The open sessions of `agentls mcp-server --http` are bounded: a new session closes the one idle
the longest, never one with a call in flight, and is refused (503) when every session is busy.

The real HTTP app (guard, session bound, the SDK's Streamable HTTP app, the engine) served by
uvicorn on 127.0.0.1 in this process, with a cap of 2 so the bound is reached by three clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.shared.exceptions import MCPError
from tests.rig.eventually import aeventually
from tests.rig.mcp_http import token_client
from tests.rig.scripted_openai import Hang, ScriptedOpenAI, Text

from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.runtime import AgentRuntime
from agentls.mcp_server.http_app import http_app
from agentls.mcp_server.http_sessions import MAX_SESSIONS, SessionBound
from agentls.mcp_server.server import build_server

TOKEN = "a-token-for-the-session-tests-0123456789"
DELEGATE = {"agent": "explain", "goal": "what does add do", "file": "calc.py"}


@pytest.fixture
def scripted() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as s:
        s.responder = lambda body: Text("add sums two numbers")
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    return root


@contextlib.asynccontextmanager
async def serving(
    workspace: Path, scripted: ScriptedOpenAI, max_sessions: int
) -> AsyncIterator[tuple[str, AgentRuntime, SessionBound]]:
    """The --http app over a runtime on the scripted model, listening on 127.0.0.1."""
    runtime = build_runtime(
        workspace, EngineSettings(model="scripted-model", base_url=scripted.url, api_key="sk-t")
    )
    app = http_app(build_server(runtime), "127.0.0.1", TOKEN, max_sessions=max_sessions)
    assert isinstance(app.app, SessionBound)
    web = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(web.serve())
    try:
        while not web.started:
            assert not task.done(), "uvicorn ended before it listened"
            await asyncio.sleep(0.02)
        port = web.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/mcp", runtime, app.app
    finally:
        runtime.cancel()
        web.should_exit = True
        await task
        await runtime.aclose()


async def initialize_raw(url: str) -> httpx2.Response:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        return await http.post(url, json=message)


def test_the_default_cap_keeps_idle_sessions_within_their_memory_budget() -> None:
    from agentls.mcp_server.http_sessions import IDLE_SESSION_BYTES, IDLE_SESSIONS_MEMORY

    assert MAX_SESSIONS * IDLE_SESSION_BYTES <= IDLE_SESSIONS_MEMORY
    assert MAX_SESSIONS < 10_000 // 4  # the SDK's own cap held some 400 MB


async def test_a_new_session_closes_the_one_idle_the_longest_and_spares_a_busy_one(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Hang(120))
    async with (
        serving(workspace, scripted, max_sessions=2) as (url, runtime, bound),
        contextlib.AsyncExitStack() as clients,
    ):
        busy: Client = await clients.enter_async_context(token_client(url, TOKEN, legacy=True))
        idle: Client = await clients.enter_async_context(token_client(url, TOKEN, legacy=True))
        await idle.list_tools()
        call = asyncio.create_task(busy.call_tool("delegate", DELEGATE))
        await aeventually(lambda: scripted.requests)  # the busy session's run waits on the model
        newest: Client = await clients.enter_async_context(token_client(url, TOKEN, legacy=True))
        listed = await newest.list_tools()
        assert "delegate" in {t.name for t in listed.tools}
        assert bound.open_sessions == 2
        with pytest.raises(MCPError, match="Session not found"):
            await idle.list_tools()  # its session was closed to make room
        assert len(runtime.active_runs) == 1 and not call.done()  # the run goes on
        call.cancel()
        with contextlib.suppress(BaseException):
            await call
        await clients.aclose()


async def test_a_new_session_is_refused_while_every_session_has_a_call_in_flight(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Hang(120), Hang(120))
    async with (
        serving(workspace, scripted, max_sessions=2) as (url, runtime, bound),
        contextlib.AsyncExitStack() as clients,
    ):
        calls = []
        for _ in range(2):
            client: Client = await clients.enter_async_context(
                token_client(url, TOKEN, legacy=True)
            )
            calls.append(asyncio.create_task(client.call_tool("delegate", DELEGATE)))
        await aeventually(lambda: len(scripted.requests) == 2)
        refused = await initialize_raw(url)
        assert refused.status_code == 503
        assert "2 sessions are open and each has a call in flight" in refused.text
        assert bound.open_sessions == 2 and len(runtime.active_runs) == 2
        for call in calls:
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
        await clients.aclose()


async def test_sessions_of_clients_that_vanished_stay_within_the_cap(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    # Clients that initialize and never come back (nor say goodbye): the SDK alone would keep
    # each for 30 minutes, up to 10,000 of them.
    async with serving(workspace, scripted, max_sessions=3) as (url, _, bound):
        for _ in range(10):
            opened = await initialize_raw(url)
            assert opened.status_code == 200
            assert bound.open_sessions <= 3
        async with token_client(url, TOKEN) as client:
            result = await client.call_tool("delegate", DELEGATE)
    assert bound.open_sessions <= 3
    assert result.is_error is False


async def test_sessionless_clients_close_no_session(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    # The 2026 protocol keeps no session: its calls must not push out a host's idle session.
    async with (
        serving(workspace, scripted, max_sessions=1) as (url, _, bound),
        token_client(url, TOKEN, legacy=True) as legacy,
    ):
        await legacy.list_tools()
        async with token_client(url, TOKEN) as sessionless:
            result = await sessionless.call_tool("delegate", DELEGATE)
        still = await legacy.list_tools()
        assert bound.open_sessions == 1
    assert result.is_error is False
    assert "delegate" in {t.name for t in still.tools}
