"""What MCP hosts rely on from `agentls mcp-server`, driven by the Python MCP SDK's client in
process and over stdio: signs of life during long silences, the real reason a run was cancelled,
argument errors in one sentence, tool descriptions and hints, and input schemas that strict hosts
and model providers accept."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent, Tool
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import Hang, ScriptedOpenAI, Text

from agentls.core.audit import AuditStore
from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.runtime import AgentRuntime
from agentls.mcp.server import build_server

CALC = "def add(a, b):\n    return a + b\n"
EXPLAIN = {"agent": "explain", "goal": "explain add", "file": "calc.py"}
MODEL_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "calc.py").write_text(CALC, encoding="utf-8")
    return root


@contextlib.asynccontextmanager
async def connected(
    workspace: Path, scripted: ScriptedOpenAI, heartbeat: float | None = None
) -> AsyncIterator[tuple[Client, AgentRuntime]]:
    """The Python MCP client on a server over a fresh runtime; `heartbeat`: its interval."""
    runtime = build_runtime(
        workspace, EngineSettings(model="scripted-model", base_url=scripted.url)
    )
    options = {} if heartbeat is None else {"heartbeat_seconds": heartbeat}
    try:
        async with Client(build_server(runtime, **options)) as client:
            yield client, runtime
    finally:
        await runtime.aclose()


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def tools(workspace: Path, scripted: ScriptedOpenAI) -> list[Tool]:
    async with connected(workspace, scripted) as (client, _):
        return list((await client.list_tools()).tools)


class Progress:
    """A progress callback that records messages and wakes a test waiting for one."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.messages.append(message or "")
        self._changed.set()

    async def until(self, found: Callable[[str], bool], timeout: float = 30) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if found(message):
                        return message
                self._changed.clear()
                await self._changed.wait()


async def cancelled(call: asyncio.Task[Any]) -> None:
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call


# --- signs of life: a heartbeat says what a silent call waits for --------------------------------


async def test_a_call_waiting_on_the_model_sends_a_heartbeat_saying_so(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Hang(60))
    progress = Progress()
    async with connected(workspace, scripted, heartbeat=0.05) as (client, _):
        call = asyncio.create_task(
            client.call_tool("delegate", EXPLAIN, progress_callback=progress)
        )
        beat = await progress.until(lambda m: "first token" in m)
        await progress.until(lambda m: "first token" in m and m != beat)  # and again
        await cancelled(call)
    assert beat.startswith("still working: explain: waiting for the model's first token, turn 1")


async def test_a_queued_task_is_named_in_the_heartbeat(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = lambda body: Hang(60)
    progress = Progress()
    tasks = [EXPLAIN, {**EXPLAIN, "goal": "explain it again"}]
    async with connected(workspace, scripted, heartbeat=0.05) as (client, _):
        call = asyncio.create_task(
            client.call_tool(
                "delegate_parallel",
                {"tasks": tasks, "max_parallel": 1},
                progress_callback=progress,
            )
        )
        beat = await progress.until(lambda m: "queued" in m and "first token" in m)
        await cancelled(call)
    assert "explain: waiting for the model's first token" in beat
    assert "1 queued for a free slot (max_parallel)" in beat


async def test_a_run_waiting_for_tokens_other_runs_hold_says_so_in_the_heartbeat(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = lambda body: Hang(60)
    progress = Progress()
    async with connected(workspace, scripted, heartbeat=0.05) as (client, runtime):
        holder = asyncio.create_task(client.call_tool("delegate", EXPLAIN))
        await aeventually(lambda: scripted.requests, "the first run to ask the model")
        held = (await runtime.budgeter.asnapshot()).reserved
        assert held > 0
        # What is left covers a second call only once the first one's reservation settles.
        await runtime.budgeter.aset_limit(held + 10)
        waiter = asyncio.create_task(
            client.call_tool("delegate", EXPLAIN, progress_callback=progress)
        )
        # Long enough to be waiting, not just reserving: the second heartbeat of that wait.
        first = await progress.until(lambda m: "grant" in m)
        beat = await progress.until(lambda m: "grant" in m and m != first)
        await cancelled(waiter)
        await cancelled(holder)
    assert beat.startswith("still working: explain: waiting for the budget to grant its tokens")
    assert len(scripted.requests) == 1  # the waiting run never reached the model


# --- the reason a run was cancelled -------------------------------------------------------------


def stdio_params(workspace: Path, scripted: ScriptedOpenAI) -> StdioServerParameters:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": scripted.url}
    env |= {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}  # this source tree
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentls", "--workspace", str(workspace), "mcp-server"],
        env=env | {"AGENTLS_MODEL": "scripted-model"},
    )


async def closing_errors(workspace: Path, count: int) -> list[str]:
    """The errors of the closing events in the audit trail once there are `count`, oldest first
    (another process writes them)."""

    def closing() -> list[Any]:
        with AuditStore.for_workspace(workspace) as audit:
            found = audit.runs()
        return found if len(found) >= count else []

    ends = await aeventually(closing, f"{count} closed runs in the audit trail", timeout=60)
    return [str(e.error) for e in sorted(ends, key=lambda e: e.time)]


@pytest.mark.slow
async def test_a_host_timeout_and_a_host_cancel_are_recorded_as_what_they_were(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    # The first hang is short: after a call cut off in the middle of a model request, the next
    # model request over a new connection is read only when that first reply is over (seen with
    # this rig on main too; not what this test is about).
    scripted.enqueue(Hang(3))
    scripted.responder = lambda body: Hang(120)
    async with Client(stdio_params(workspace, scripted)) as client:
        with pytest.raises(MCPError, match="timed out"):
            await client.call_tool("delegate", EXPLAIN, read_timeout_seconds=1.0)
        (timed_out,) = await closing_errors(workspace, 1)
        call = asyncio.create_task(client.call_tool("delegate", EXPLAIN))
        await aeventually(lambda: len(scripted.requests) >= 2, "the second run to ask the model")
        await cancelled(call)  # the SDK says why: "caller cancelled"
        stopped = (await closing_errors(workspace, 2))[1]
    assert timed_out.startswith("the MCP host stopped waiting (timed out after 1.0s)")
    assert "raise it (docs/mcp.md, Host timeouts)" in timed_out
    assert stopped == "cancelled by the MCP host (caller cancelled)"


def jsonrpc(message: dict[str, Any]) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("end", "reason"),
    [
        ("close stdin", "the MCP host closed the connection while the call ran"),
        # A host that stops the server with SIGTERM may keep stdin open: it exits all the same.
        ("SIGTERM", "agentls mcp-server was stopped (SIGTERM)"),
    ],
)
async def test_a_host_gone_and_a_stopped_server_are_recorded_as_what_they_were(
    workspace: Path, scripted: ScriptedOpenAI, end: str, reason: str
) -> None:
    scripted.responder = lambda body: Hang(120)
    params = stdio_params(workspace, scripted)
    proc = subprocess.Popen(
        [params.command, *params.args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=params.env,
    )
    assert proc.stdin is not None
    client = {"name": "raw", "version": "1"}
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}
    proc.stdin.write(
        jsonrpc({"id": 1, "method": "initialize", "params": init})
        + jsonrpc({"method": "notifications/initialized"})
        + jsonrpc(
            {"id": 2, "method": "tools/call", "params": {"name": "delegate", "arguments": EXPLAIN}}
        )
    )
    proc.stdin.flush()
    try:
        await aeventually(lambda: scripted.requests, "the run to ask the model", timeout=60)
        if end == "SIGTERM":
            proc.send_signal(signal.SIGTERM)  # stdin stays open
        else:
            proc.stdin.close()
        assert await asyncio.to_thread(proc.wait, 60) == 0
        errors = await closing_errors(workspace, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert errors == [reason]


# --- arguments the schema refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "sentence"),
    [
        ("delegate", {**EXPLAIN, "budget": 0}, "budget: 0 is too small; the least is 1"),
        ("delegate", {**EXPLAIN, "budget": "lots"}, "budget: 'lots' is not a whole number"),
        ("delegate", {"goal": "x", "file": "calc.py"}, "agent: missing"),
        (
            "delegate",
            {**EXPLAIN, "bugdet": 5},
            "bugdet: no such argument; the arguments are agent, goal, file, lines, budget",
        ),
        ("delegate_parallel", {"tasks": []}, "tasks: 0 items; give at least 1"),
        (
            "delegate_parallel",
            {"tasks": [EXPLAIN], "max_parallel": 65},
            "max_parallel: 65 is too large; the most is 64",
        ),
        (
            "delegate_parallel",
            {"tasks": [{**EXPLAIN, "budget": -3}]},
            "tasks[0].budget: -3 is too small; the least is 1",
        ),
    ],
)
async def test_arguments_the_schema_refuses_are_one_sentence_naming_the_argument_and_bound(
    workspace: Path, scripted: ScriptedOpenAI, tool: str, arguments: dict[str, Any], sentence: str
) -> None:
    async with connected(workspace, scripted) as (client, _):
        result = await client.call_tool(tool, arguments)
    text = text_of(result)
    assert result.is_error is True
    assert f"Error executing tool {tool}: {sentence}" in text
    assert "pydantic" not in text and "validation error" not in text and "\n" not in text
    assert not scripted.requests


# --- how the tools present themselves ------------------------------------------------------------


async def test_tool_descriptions_carry_no_docstring_indentation(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    for tool in await tools(workspace, scripted):
        assert tool.description
        indented = [line for line in tool.description.splitlines() if line[:1].isspace()]
        assert not indented, f"{tool.name}: {indented}"


async def test_tools_that_change_nothing_are_marked_read_only(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    hints = {t.name: t.annotations for t in await tools(workspace, scripted)}
    for name in ("list_agents", "budget"):
        assert hints[name] is not None and hints[name].read_only_hint is True, name
    for name in ("delegate", "delegate_parallel", "create_agent"):  # they spend tokens
        annotations = hints[name]
        assert annotations is not None
        assert annotations.read_only_hint is False and annotations.destructive_hint is False


# The subset of JSON Schema that every strict consumer we know accepts (OpenAI's strict mode for
# function parameters, Gemini's function declarations, hosts that do not resolve references):
# no references (`$ref`, `$defs`, `definitions`): everything inline; no `exclusiveMinimum` /
# `exclusiveMaximum` (Gemini has neither); one plain `type` per node (no `anyOf`/`oneOf`/`allOf`,
# no type lists, no `null`); every object lists its `properties`, says `additionalProperties:
# false` and requires only properties it has; every array has `items`; and no keyword outside
# this list.
PORTABLE_KEYWORDS = {
    "type",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
}
PORTABLE_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


def portability_problems(node: dict[str, Any], where: str) -> list[str]:
    problems = [f"{where}: keyword {k}" for k in node if k not in PORTABLE_KEYWORDS]
    if node.get("type") not in PORTABLE_TYPES:
        problems.append(f"{where}: type {node.get('type')!r}")
    if node.get("type") == "object":
        properties = node.get("properties")
        if not isinstance(properties, dict):
            return [*problems, f"{where}: object without properties"]
        if node.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties is not false")
        problems += [
            f"{where}: requires unknown {r}"
            for r in node.get("required", [])
            if r not in properties
        ]
        for name, child in properties.items():
            problems += portability_problems(child, f"{where}.{name}")
    if node.get("type") == "array":
        if not isinstance(node.get("items"), dict):
            return [*problems, f"{where}: array without items"]
        problems += portability_problems(node["items"], f"{where}[]")
    return problems


async def test_every_input_schema_is_in_the_portable_subset(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    listed = await tools(workspace, scripted)
    assert {t.name for t in listed} >= {"delegate", "delegate_parallel", "create_agent"}
    for tool in listed:
        assert portability_problems(tool.input_schema, tool.name) == []


async def test_the_portable_schema_keeps_what_the_server_accepts(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = lambda body: Text("about add")
    (parallel,) = [t for t in await tools(workspace, scripted) if t.name == "delegate_parallel"]
    task = parallel.input_schema["properties"]["tasks"]["items"]
    assert set(task["required"]) == {"agent", "goal", "file"}
    assert task["properties"]["budget"]["minimum"] == 1
    async with connected(workspace, scripted) as (client, _):
        result = await client.call_tool(
            "delegate_parallel", {"tasks": [{**EXPLAIN, "budget": 5000, "lines": None}]}
        )
    assert result.is_error is False, text_of(result)
