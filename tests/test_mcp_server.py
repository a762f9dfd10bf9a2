"""`agentls mcp-server`: the engine as MCP tools, driven by the Python `mcp` Client and by the
MCP Inspector CLI (a client this project did not write), against the scripted model server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from tests.rig.eventually import aeventually
from tests.rig.mcp_http import HttpServer, http_process, node_env, token_client
from tests.rig.scripted_openai import Hang, ScriptedOpenAI, Text, ToolCall

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.events import EventKind
from agentls.core.runtime import AgentRuntime
from agentls.mcp_server import quiet_errors
from agentls.mcp_server.progress import OUTPUT_INTERVAL
from agentls.mcp_server.server import Lineage, build_server

ROOT = Path(__file__).resolve().parent.parent
INSPECTOR = ROOT / "tests/node/node_modules/@modelcontextprotocol/inspector-cli/build"
CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
REWRITTEN = "def add(a: int, b: int) -> int:\n    return a + b\n"


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
    (tmp_path / "outside.py").write_text("secret = 1\n", encoding="utf-8")
    return root


@contextlib.asynccontextmanager
async def connected(
    workspace: Path, scripted: ScriptedOpenAI, lineage: Lineage | None = None, **settings: Any
) -> AsyncIterator[tuple[Client, AgentRuntime]]:
    """The Python MCP client connected to an agentls MCP server over a fresh runtime."""
    runtime = build_runtime(
        workspace,
        EngineSettings(model="scripted-model", base_url=scripted.url, **settings),
    )
    try:
        async with Client(build_server(runtime, lineage or Lineage())) as client:
            yield client, runtime
    finally:
        await runtime.aclose()


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def child_env(scripted: ScriptedOpenAI) -> dict[str, str]:
    return {
        **os.environ,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": scripted.url,
        "AGENTLS_MODEL": "scripted-model",
    }


def inspector(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run the MCP Inspector CLI; its JSON output, parsed."""
    # It reads its own package.json relative to the working directory.
    done = subprocess.run(
        ["node", "index.js", *args],
        cwd=INSPECTOR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


AGENTLS_STDIO = [sys.executable, "-m", "agentls"]

# --- a client the project did not write -------------------------------------------------------


def test_inspector_lists_the_tools_over_stdio(workspace: Path, scripted: ScriptedOpenAI) -> None:
    listed = inspector(
        *AGENTLS_STDIO,
        "--workspace",
        str(workspace),
        "mcp-server",
        "--method",
        "tools/list",
        env=child_env(scripted),
    )
    tools = {t["name"]: t for t in listed["tools"]}
    assert set(tools) == {"list_agents", "delegate", "delegate_parallel", "create_agent", "budget"}
    assert set(tools["delegate"]["inputSchema"]["required"]) == {"agent", "goal", "file"}


@contextlib.contextmanager
def http_server(workspace: Path, scripted: ScriptedOpenAI) -> Iterator[HttpServer]:
    """`agentls mcp-server --http 127.0.0.1:0` in a subprocess: its URL, token and process."""
    with http_process(workspace, child_env(scripted)) as server:
        yield server


def test_inspector_delegates_over_streamable_http(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = lambda body: Text("add sums two numbers")
    with http_server(workspace, scripted) as server:
        bearer = ("--header", f"Authorization: Bearer {server.token}")
        listed = inspector(server.url, *bearer, "--method", "tools/list")
        assert "delegate" in {t["name"] for t in listed["tools"]}
        called = inspector(
            server.url,
            *bearer,
            "--method",
            "tools/call",
            "--tool-name",
            "delegate",
            "--tool-arg",
            "agent=explain",
            "goal=what does add do",
            "file=calc.py",
            "lines=1-2",
        )
    assert called["isError"] is False
    assert called["structuredContent"]["answer"] == "add sums two numbers"
    assert called["structuredContent"]["status"] == "finished"
    assert "add sums two numbers" in called["content"][0]["text"]


def test_conformance_suite_server_scenarios_pass_over_http(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    """@modelcontextprotocol/conformance: every server scenario outside the baseline passes, and
    every baseline entry still fails (the suite exits non-zero otherwise)."""
    suite = ROOT / "tests/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
    baseline = ROOT / "tests/node/conformance-baseline.yml"
    with http_server(workspace, scripted) as server:
        done = subprocess.run(
            [
                "node",
                str(suite),
                "server",
                "--url",
                server.url,
                "--expected-failures",
                str(baseline),
            ],
            env=node_env(dict(os.environ), server),  # the suite cannot send headers itself
            capture_output=True,
            text=True,
            timeout=600,
        )
    summary = done.stdout[done.stdout.find("=== SUMMARY ===") :]
    assert done.returncode == 0, summary or done.stderr
    for scenario in ("server-initialize", "ping", "tools-list", "tools-call-error"):
        assert f"✓ {scenario}:" in summary


def test_http_refuses_a_non_loopback_address_without_allow_remote(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--workspace", str(workspace), "mcp-server", "--http", "0.0.0.0:8765"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--http" in err and "not a loopback address" in err and "--allow-remote" in err


def test_http_address_without_a_port_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--workspace", str(workspace), "mcp-server", "--http", "127.0.0.1"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


# --- the Python SDK client ------------------------------------------------------------------


async def test_list_agents_names_the_builtins_and_the_orchestrator(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    async with connected(workspace, scripted) as (client, _):
        result = await client.call_tool("list_agents", {})
    assert result.structured_content is not None
    names = {a["name"] for a in result.structured_content["agents"]}
    assert {"explain", "review", "refactor", "orchestrator"} <= names
    assert result.structured_content["can_delegate"] is True


async def test_delegate_returns_the_answer_and_usage_that_the_ledger_recorded(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text("add returns a + b", prompt_tokens=120, completion_tokens=7))
    async with connected(workspace, scripted) as (client, runtime):
        result = await client.call_tool(
            "delegate", {"agent": "explain", "goal": "explain add", "file": "calc.py"}
        )
        total = runtime.budgeter.snapshot().used
    out = result.structured_content
    assert result.is_error is False and out is not None
    assert out["answer"] == "add returns a + b"
    assert out["usage"]["input_tokens"] == 120 and out["usage"]["output_tokens"] == 7
    assert out["usage"]["total_tokens"] == total == 127
    assert "add returns a + b" in text_of(result) and "127 tokens" in text_of(result)


async def test_delegate_sends_only_the_requested_lines_to_the_model(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    async with connected(workspace, scripted) as (client, _):
        await client.call_tool(
            "delegate",
            {"agent": "explain", "goal": "explain sub", "file": "calc.py", "lines": "5-6"},
        )
    prompt = scripted.requests[0]["messages"][1]["content"]
    assert "def sub" in prompt and "def add" not in prompt


async def test_delegate_returns_edits_as_a_diff_and_writes_no_file(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text(f"```python\n{REWRITTEN}```"))
    async with connected(workspace, scripted) as (client, _):
        result = await client.call_tool(
            "delegate",
            {"agent": "refactor", "goal": "add types", "file": "calc.py", "lines": "1-2"},
        )
    out = result.structured_content
    assert out is not None and out["status"] == "finished"
    assert out["edited_files"] == ["calc.py"]
    assert "-def add(a, b):" in out["diff"] and "+def add(a: int, b: int) -> int:" in out["diff"]
    assert out["diff"] in text_of(result)
    assert (workspace / "calc.py").read_text(encoding="utf-8") == CALC


async def test_progress_notifications_follow_the_run(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text("fine"))
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with connected(workspace, scripted) as (client, _):
        await client.call_tool(
            "delegate",
            {"agent": "explain", "goal": "explain", "file": "calc.py"},
            progress_callback=on_progress,
        )
    assert messages[0].startswith("explain: started")
    assert any("turn 1 done" in m for m in messages)
    assert messages[-1].startswith("explain: finished")


async def test_a_streaming_answer_is_reported_as_writing_every_few_seconds(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    # About 4 s of streamed words: a caller waiting on the run hears that it is still writing.
    scripted.enqueue(Text(" ".join(f"w{i}" for i in range(80)), chunk_delay=0.05))
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with connected(workspace, scripted) as (client, _):
        started = asyncio.get_running_loop().time()
        await client.call_tool(
            "delegate",
            {"agent": "explain", "goal": "explain", "file": "calc.py"},
            progress_callback=on_progress,
        )
        seconds = asyncio.get_running_loop().time() - started
    writing = [m for m in messages if m.startswith("explain: writing (turn 1)")]
    assert writing  # the first delta is reported at once
    assert len(writing) <= seconds / OUTPUT_INTERVAL + 1  # then at most one per interval


async def test_progress_notifications_arrive_over_stdio(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = lambda body: Text("fine")
    env = child_env(scripted)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentls", "--workspace", str(workspace), "mcp-server"],
        env={k: env[k] for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL")},
    )
    steps: list[tuple[float, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, message or ""))

    async with Client(params) as client:
        result = await client.call_tool(
            "delegate",
            {"agent": "explain", "goal": "explain", "file": "calc.py"},
            progress_callback=on_progress,
        )
    assert result.is_error is False
    assert [p for p, _ in steps] == sorted({p for p, _ in steps})  # strictly increasing
    assert steps[0][1].startswith("explain: started")
    assert steps[-1][1].startswith("explain: finished")


async def test_cancelling_the_call_cancels_the_run_and_records_it(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Hang(60))
    async with connected(workspace, scripted) as (client, runtime):
        call = asyncio.create_task(
            client.call_tool("delegate", {"agent": "explain", "goal": "x", "file": "calc.py"})
        )
        await aeventually(lambda: scripted.requests, "the run to ask the model")
        (run_id,) = runtime.active_runs
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await aeventually(lambda: not runtime.active_runs, "the run to end")
    with AuditStore.for_workspace(workspace) as audit:
        closing = audit.runs(run_id=run_id)
    assert [e.kind for e in closing] == [EventKind.CANCELLED]


async def test_cancelling_a_call_over_http_cancels_the_run_and_commits_what_it_spent(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    # Turn 1 (a read_file call) is spent; turn 2 waits on the model when the client cancels.
    scripted.enqueue(ToolCall("read_file", {"path": "calc.py"}), Hang(120))
    with http_server(workspace, scripted) as server:
        async with token_client(server.url, server.token) as client:
            call = asyncio.create_task(
                client.call_tool("delegate", {"agent": "research", "goal": "x", "file": "calc.py"})
            )
            await aeventually(lambda: len(scripted.requests) >= 2, "the run's second model call")
            call.cancel()  # the SDK sends notifications/cancelled for the call
            with contextlib.suppress(asyncio.CancelledError):
                await call
            # The server is still up: only the cancel can end the run.
            closing = await closing_events(workspace, timeout=60)
    (end,) = closing
    assert end.kind is EventKind.CANCELLED and end.agent == "research"
    with AuditStore.for_workspace(workspace) as audit:
        calls = audit.query(run_id=end.run_id, kinds=[EventKind.MODEL_CALL])
    assert len(calls) == 1  # turn 1 was committed; the hung turn 2 spent nothing
    spent = calls[0].usage.total
    assert spent > 0 and end.usage.total == spent
    with TokenBudgeter.for_workspace(workspace) as ledger:
        run = ledger.run_snapshot(end.run_id)
        total = ledger.snapshot()
    assert (run.used, run.reserved) == (spent, 0)
    assert (total.used, total.reserved) == (spent, 0)


async def test_sigterm_stops_the_http_server_and_records_the_run_in_flight_cancelled(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    # A client holds its session (and event stream) open with a run waiting on the model: SIGTERM
    # still stops the server, and the run is recorded cancelled with what it spent committed.
    scripted.enqueue(ToolCall("read_file", {"path": "calc.py"}), Hang(300))
    with http_server(workspace, scripted) as server:
        proc = server.proc
        async with token_client(server.url, server.token) as client:
            call = asyncio.create_task(
                client.call_tool("delegate", {"agent": "research", "goal": "x", "file": "calc.py"})
            )
            await aeventually(lambda: len(scripted.requests) >= 2, "the run's second model call")
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 60)
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
    assert code == 0
    assert "Traceback" not in "".join(server.stderr)  # a quiet stop, not a cancelled server's dump
    (end,) = await closing_events(workspace, timeout=0)
    assert end.kind is EventKind.CANCELLED and end.agent == "research"
    assert end.error == "agentls mcp-server was stopped (SIGTERM)"  # not "by the user"
    with TokenBudgeter.for_workspace(workspace) as ledger:
        total = ledger.snapshot()
    assert total.used == end.usage.total > 0 and total.reserved == 0


async def test_an_unknown_prompt_is_an_error_answer_and_one_log_line(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    with http_server(workspace, scripted) as server:
        async with token_client(server.url, server.token) as client:
            with pytest.raises(MCPError):  # the SDK answers "Internal server error" over HTTP
                await client.get_prompt("nope")
            # The server keeps serving, and said it in one line, not a traceback.
            assert "delegate" in {t.name for t in (await client.list_tools()).tools}
    logged = "".join(server.stderr)
    assert "Unknown prompt: nope" in logged
    assert "Traceback" not in logged


async def closing_events(workspace: Path, timeout: float) -> list[Any]:
    """The closing events in the workspace's audit trail, once there is one (polled)."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout
    while True:
        with AuditStore.for_workspace(workspace) as audit:
            closing = audit.runs()
        if closing or loop.time() > ends:
            return closing
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"goal": "x", "file": "calc.py"}, "agent"),
        ({"agent": "nobody", "goal": "x", "file": "calc.py"}, "agent: unknown agent 'nobody'"),
        ({"agent": "explain", "goal": "x", "file": "missing.py"}, "file: no such file"),
        (
            {"agent": "explain", "goal": "x", "file": "../outside.py"},
            "file: '../outside.py' is outside",
        ),
        ({"agent": "explain", "goal": "x", "file": "calc.py", "lines": "7-3"}, "lines: '7-3'"),
        ({"agent": "explain", "goal": "x", "file": "calc.py", "lines": "40-50"}, "lines: line 40"),
        ({"agent": "explain", "goal": "x", "file": "calc.py", "budget": 0}, "budget"),
        ({"agent": "explain", "goal": " ", "file": "calc.py"}, "goal: empty"),
    ],
)
async def test_a_bad_argument_is_a_tool_error_naming_it(
    workspace: Path, scripted: ScriptedOpenAI, arguments: dict[str, Any], named: str
) -> None:
    async with connected(workspace, scripted) as (client, _):
        result = await client.call_tool("delegate", arguments)
        still_serving = await client.call_tool("list_agents", {})
    assert result.is_error is True
    assert named in text_of(result)
    assert not scripted.requests  # nothing reached the model
    assert still_serving.is_error is False


async def test_delegate_parallel_returns_each_result_in_task_order(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = lambda body: Text(
        "about add" if "explain add" in body["messages"][1]["content"] else "about sub"
    )
    tasks = [
        {"agent": "explain", "goal": "explain add", "file": "calc.py", "lines": "1-2"},
        {"agent": "explain", "goal": "explain sub", "file": "calc.py", "lines": "5-6"},
    ]
    async with connected(workspace, scripted) as (client, runtime):
        result = await client.call_tool("delegate_parallel", {"tasks": tasks, "max_parallel": 2})
        used = runtime.budgeter.snapshot().used
    out = result.structured_content
    assert out is not None and out["counts"] == {"finished": 2}
    assert [r["answer"] for r in out["results"]] == ["about add", "about sub"]
    assert out["usage"]["total_tokens"] == used


async def test_delegate_parallel_names_the_bad_task(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    tasks = [
        {"agent": "explain", "goal": "a", "file": "calc.py"},
        {"agent": "explain", "goal": "b", "file": "nope.py"},
    ]
    async with connected(workspace, scripted) as (client, _):
        result = await client.call_tool("delegate_parallel", {"tasks": tasks})
    assert result.is_error is True
    assert "tasks[1].file: no such file" in text_of(result)


async def test_create_agent_creates_saves_and_runs_the_new_agent(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    definition = {
        "name": "sql-reviewer",
        "description": "Reviews SQL for injection",
        "instructions": "Find SQL injection.",
        "mode": "answer",
    }
    scripted.enqueue(Text(json.dumps(definition)), Text("no SQL here"))
    async with connected(workspace, scripted) as (client, _):
        result = await client.call_tool(
            "create_agent",
            {"prompt": "a reviewer for SQL injection", "file": "calc.py", "save": True},
        )
        listed = await client.call_tool("list_agents", {})
    out = result.structured_content
    assert result.is_error is False and out is not None
    assert out["definition"]["name"] == "sql-reviewer"
    assert out["run"]["answer"] == "no SQL here"
    assert (workspace / ".agentls/agents/sql-reviewer.yaml").is_file()
    assert listed.structured_content is not None
    assert "sql-reviewer" in {a["name"] for a in listed.structured_content["agents"]}


async def test_budget_reports_what_is_used_and_left(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text("ok", prompt_tokens=90, completion_tokens=10))
    async with connected(workspace, scripted) as (client, runtime):
        runtime.budgeter.set_limit(1000)
        await client.call_tool("delegate", {"agent": "explain", "goal": "x", "file": "calc.py"})
        result = await client.call_tool("budget", {})
    out = result.structured_content
    assert out is not None
    assert out["workspace"]["used"] == 100 and out["workspace"]["remaining"] == 900
    assert out["workspace"]["agents"]["explain"]["used"] == 100
    assert out["depth"] == 0 and out["max_depth"] == 2


async def test_a_server_past_the_maximum_depth_offers_no_tool_that_starts_a_run(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    lineage = Lineage(("root", "child", "grandchild"))
    async with connected(workspace, scripted, lineage, max_depth=2) as (client, _):
        listed = await client.list_tools()
        refused = await client.call_tool(
            "delegate", {"agent": "explain", "goal": "x", "file": "calc.py"}
        )
    assert {t.name for t in listed.tools} == {"list_agents", "budget"}
    assert refused.is_error is True


async def test_a_child_server_clamps_its_runs_to_what_the_parent_run_has_left(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text("ok"))
    async with connected(workspace, scripted, Lineage(("parent-run",))) as (client, runtime):
        runtime.budgeter.set_run_limit("parent-run", 900)
        result = await client.call_tool(
            "delegate", {"agent": "explain", "goal": "x", "file": "calc.py", "budget": 5000}
        )
        parent = runtime.budgeter.run_snapshot("parent-run")
    out = result.structured_content
    assert out is not None and out["parent_run_id"] == "parent-run" and out["depth"] == 1
    with AuditStore.for_workspace(workspace) as audit:
        (started,) = audit.query(run_id=out["run_id"], kinds=[EventKind.STARTED])
    assert started.data["budget"] == 900
    assert parent.used == out["usage"]["total_tokens"]  # charged to the parent's run scope


@pytest.mark.parametrize("logger", quiet_errors.DISPATCHER_LOGGERS)
def test_an_sdk_handler_error_for_an_unknown_name_is_logged_as_one_line(
    logger: str, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_errors.install()
    try:
        raise ValueError("Unknown prompt: 100% made up")
    except ValueError:
        logging.getLogger(logger).exception("handler for %r raised", "prompts/get")
    try:
        raise KeyError("a bug")
    except KeyError:
        logging.getLogger(logger).exception("handler for %r raised", "tools/call")

    unknown, bug = caplog.records[-2:]
    assert unknown.getMessage() == "handler for 'prompts/get' raised: Unknown prompt: 100% made up"
    assert unknown.levelno == logging.WARNING and unknown.exc_info is None
    assert bug.levelno == logging.ERROR and bug.exc_info is not None  # a bug keeps its traceback
