"""The MCP client: agents call tools of real MCP servers (npm reference servers and an SDK server
that fails on purpose) through the runtime, with allow-lists, timeouts, restarts and roots."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.definitions import AgentDefinition, Mode, load_file
from agentls.core.events import EventKind, RunStatus
from agentls.core.llm import ModelSettings
from agentls.core.llm_openai import OpenAIChatModel
from agentls.core.mcp_client.config import McpServerSettings, load_mcp_config, user_config_file
from agentls.core.mcp_client.pool import McpPool, McpServerError
from agentls.core.mcp_client.rendering import render_result
from agentls.core.mcp_client.tools import McpToolProvider, tool_name, unique_names
from agentls.core.registry import AgentRegistry
from agentls.core.runtime import AgentRuntime, RunResult, RuntimeConfig
from agentls.core.tools.framing import CLOSE_TAG, OPEN_TAG

REPO = Path(__file__).resolve().parents[1]
NODE_SERVERS = REPO / "tests" / "node" / "node_modules" / "@modelcontextprotocol"
EVERYTHING = McpServerSettings(
    command="node", args=[str(NODE_SERVERS / "server-everything" / "dist" / "index.js")]
)
FAULTY = McpServerSettings(
    command=sys.executable, args=[str(REPO / "tests" / "rig" / "faulty_mcp_server.py")]
)


def filesystem(folder: Path) -> McpServerSettings:
    return McpServerSettings(
        command="node",
        args=[str(NODE_SERVERS / "server-filesystem" / "dist" / "index.js"), str(folder)],
    )


def agent(mcp: dict[str, Any], name: str = "mcp-user") -> AgentDefinition:
    return AgentDefinition(
        name=name,
        description="Uses MCP tools",
        instructions="Use the tools.",
        mode=Mode.TOOLS,
        mcp=mcp,
        max_turns=4,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "notes.txt").write_text("inside the workspace\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside the workspace\n", encoding="utf-8")
    return root


def unframe(message: str) -> str:
    """A tool message without the data frame tool output gets (core/tools/framing.py); the
    runtime's own messages (an unknown tool) come unframed."""
    lines = message.split("\n")
    if not (lines[0].startswith(OPEN_TAG) and lines[-1].startswith(CLOSE_TAG)):
        return message
    return "\n".join(lines[2:-1])


class Harness:
    """A runtime whose MCP servers come from the editor setting, and what it recorded."""

    def __init__(self, runtime: AgentRuntime, provider: McpToolProvider, server: ScriptedOpenAI):
        self.runtime = runtime
        self.provider = provider
        self.pool = provider.pool
        self.model = server

    async def run(self, definition: AgentDefinition, goal: str = "go") -> RunResult:
        return await self.runtime.delegate(definition, goal)

    def tool_message(self, request: int) -> str:
        """The content of the last tool message of the `request`-th request (0-based), unframed."""
        messages = self.model.requests[request]["messages"]
        return unframe(str([m for m in messages if m["role"] == "tool"][-1]["content"]))

    def offered(self, request: int = 0) -> list[str]:
        return [t["function"]["name"] for t in self.model.requests[request].get("tools", [])]


async def make_harness(
    server: ScriptedOpenAI,
    workspace: Path,
    servers: dict[str, McpServerSettings],
    *,
    call_timeout: float = 60.0,
) -> Harness:
    model = OpenAIChatModel(
        ModelSettings(model="scripted-model", base_url=server.url, api_key="sk-test")
    )
    provider = McpToolProvider(McpPool(workspace, call_timeout=call_timeout), servers)
    runtime = AgentRuntime(
        workspace,
        AgentRegistry(),
        lambda name: model,
        TokenBudgeter(None),
        AuditStore(None),
        RuntimeConfig(max_output_tokens=256),
        extra_tools=provider,
    )
    await provider.reload()  # each run reloads too; tests that use the pool directly need it now
    return Harness(runtime, provider, server)


@pytest.fixture
async def harness(server: ScriptedOpenAI, workspace: Path) -> AsyncIterator[Harness]:
    h = await make_harness(
        server,
        workspace,
        {"everything": EVERYTHING, "faulty": FAULTY, "files": filesystem(workspace)},
    )
    try:
        yield h
    finally:
        await h.runtime.aclose()


async def test_the_pool_lists_the_tools_of_a_real_server(harness: Harness) -> None:
    tools = await harness.pool.tools("everything")
    assert {"get-sum", "echo"} <= set(tools)
    assert tools["get-sum"].input_schema["required"] == ["a", "b"]


async def test_an_agent_calls_get_sum_and_the_model_reads_the_answer(harness: Harness) -> None:
    harness.model.enqueue(ToolCall("mcp__everything__get-sum", {"a": 2, "b": 40}), Text("42"))
    result = await harness.run(agent({"everything": ["get-sum"]}))
    assert result.status is RunStatus.FINISHED, result.error
    assert result.text == "42"
    assert harness.tool_message(1) == "The sum of 2 and 40 is 42."
    assert harness.runtime.audit is not None
    calls = harness.runtime.audit.query(run_id=result.run_id, kinds=[EventKind.TOOL_CALL])
    assert [(e.data["tool"], e.data["is_error"]) for e in calls] == [
        ("mcp__everything__get-sum", False)
    ]
    assert calls[0].data["arguments"] == "a=2, b=40"


async def test_only_the_allowed_tools_are_offered(harness: Harness) -> None:
    harness.model.enqueue(Text("done"))
    await harness.run(agent({"everything": ["get-sum", "echo"]}))
    assert sorted(harness.offered()) == ["mcp__everything__echo", "mcp__everything__get-sum"]


async def test_a_tool_outside_the_allow_list_is_an_unknown_tool(harness: Harness) -> None:
    harness.model.enqueue(ToolCall("mcp__everything__echo", {"message": "hi"}), Text("ok"))
    result = await harness.run(agent({"everything": ["get-sum"]}))
    assert result.status is RunStatus.FINISHED
    assert "unknown tool 'mcp__everything__echo'" in harness.tool_message(1)
    assert "mcp__everything__get-sum" in harness.tool_message(1)


async def test_star_offers_every_tool_of_the_server(harness: Harness) -> None:
    harness.model.enqueue(Text("done"))
    await harness.run(agent({"everything": "*"}))
    names = set(harness.offered())
    server_tools = await harness.pool.tools("everything")
    assert names == {tool_name("everything", t) for t in server_tools}


async def test_allowing_a_tool_the_server_lacks_fails_the_run_clearly(harness: Harness) -> None:
    result = await harness.run(agent({"everything": ["get-product"]}))
    assert result.status is RunStatus.FAILED
    assert "'get-product' of MCP server 'everything', which has no such tool" in (
        result.error or ""
    )
    assert harness.model.requests == []


async def test_a_path_outside_the_folder_is_refused_and_the_model_reads_why(
    harness: Harness, workspace: Path
) -> None:
    outside = str(workspace.parent / "secret.txt")
    harness.model.enqueue(ToolCall("mcp__files__read_text_file", {"path": outside}), Text("no"))
    result = await harness.run(agent({"files": ["read_text_file"]}))
    assert result.status is RunStatus.FINISHED
    message = harness.tool_message(1)
    assert message.startswith("error: ")
    assert "Access denied" in message
    assert "outside the workspace" not in message
    assert harness.runtime.audit is not None
    calls = harness.runtime.audit.query(run_id=result.run_id, kinds=[EventKind.TOOL_CALL])
    assert calls[0].data["is_error"] is True


async def test_a_file_inside_the_folder_is_read(harness: Harness, workspace: Path) -> None:
    path = str(workspace / "notes.txt")
    harness.model.enqueue(ToolCall("mcp__files__read_text_file", {"path": path}), Text("read"))
    await harness.run(agent({"files": ["read_text_file"]}))
    assert harness.tool_message(1) == "inside the workspace\n"


async def test_the_only_root_offered_is_the_workspace(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    # server-filesystem replaces its allowed folders with the client's roots: started on "/",
    # it must end up allowed the workspace and nothing wider.
    h = await make_harness(server, workspace, {"files": filesystem(Path("/"))})
    try:
        session = await h.pool.session("files")
        await session.roots_requested.wait()
        listing = ""
        for _ in range(100):  # the server applies the roots asynchronously after asking
            result = await h.pool.call_tool("files", "list_allowed_directories", {})
            listing = result.content
            if "\n/\n" not in listing + "\n" and not listing.rstrip().endswith("\n/"):
                break
            await asyncio.sleep(0.05)
        assert listing.splitlines()[1:] == [str(workspace.resolve())]
    finally:
        await h.runtime.aclose()


async def test_a_server_that_fails_to_start_fails_the_run_with_one_clear_error(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    broken = McpServerSettings(
        command=sys.executable,
        args=[
            "-c",
            "import sys; sys.stderr.write('boom: BROKEN_API_KEY is not set\\n'); sys.exit(3)",
        ],
    )
    h = await make_harness(server, workspace, {"broken": broken})
    try:
        result = await h.run(agent({"broken": "*"}))
    finally:
        await h.runtime.aclose()
    assert result.status is RunStatus.FAILED
    error = result.error or ""
    assert error.startswith("MCP server 'broken' (")
    assert sys.executable in error
    assert "boom: BROKEN_API_KEY is not set" in error
    assert server.requests == []


async def test_a_missing_command_names_the_command(server: ScriptedOpenAI, workspace: Path) -> None:
    missing = McpServerSettings(command="agentls-no-such-mcp-server", args=["--stdio"])
    h = await make_harness(server, workspace, {"missing": missing})
    try:
        result = await h.run(agent({"missing": "*"}))
    finally:
        await h.runtime.aclose()
    assert result.status is RunStatus.FAILED
    assert "MCP server 'missing' (agentls-no-such-mcp-server --stdio" in (result.error or "")
    assert "did not start" in (result.error or "")


async def test_an_unconfigured_server_fails_the_run_naming_it(harness: Harness) -> None:
    result = await harness.run(agent({"github": "*"}))
    assert result.status is RunStatus.FAILED
    assert "MCP server 'github' is not configured" in (result.error or "")
    assert "everything" in (result.error or "")


async def test_a_crash_mid_call_is_a_tool_error_and_the_next_call_restarts_the_server(
    harness: Harness,
) -> None:
    harness.model.enqueue(
        ToolCall("mcp__faulty__pid", {}),
        ToolCall("mcp__faulty__crash", {}),
        ToolCall("mcp__faulty__pid", {}),
        Text("recovered"),
    )
    result = await harness.run(agent({"faulty": ["pid", "crash"]}))
    assert result.status is RunStatus.FINISHED, result.error
    first_pid = harness.tool_message(1)
    crash = harness.tool_message(2)
    assert crash.startswith("error: MCP server 'faulty'")
    assert "closed the connection during crash" in crash
    assert "faulty: crashing on purpose" in crash
    assert "started again on the next call" in crash
    second_pid = harness.tool_message(3)
    assert second_pid.isdigit() and first_pid.isdigit() and second_pid != first_pid
    assert harness.pool.starts["faulty"] == 2


async def test_a_hanging_tool_is_cancelled_at_the_call_timeout(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    h = await make_harness(server, workspace, {"faulty": FAULTY}, call_timeout=1.0)
    try:
        server.enqueue(
            ToolCall("mcp__faulty__hang", {}), ToolCall("mcp__faulty__pid", {}), Text("ok")
        )
        result = await h.run(agent({"faulty": ["hang", "pid"]}))
        assert result.status is RunStatus.FINISHED, result.error
        assert "hang did not answer within 1 s" in h.tool_message(1)
        assert h.tool_message(2).isdigit()  # the same session still serves
        assert h.pool.starts["faulty"] == 1
    finally:
        await h.runtime.aclose()


async def test_parallel_runs_share_one_session_per_server(harness: Harness) -> None:
    harness.model.enqueue(
        ToolCall("mcp__faulty__pid", {}),
        ToolCall("mcp__faulty__pid", {}),
        Text("a"),
        Text("b"),
    )
    results = await asyncio.gather(
        harness.run(agent({"faulty": ["pid"]}, "one")),
        harness.run(agent({"faulty": ["pid"]}, "two")),
    )
    assert [r.status for r in results] == [RunStatus.FINISHED, RunStatus.FINISHED]
    assert harness.pool.starts["faulty"] == 1


async def test_closing_the_runtime_ends_the_server_processes(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    h = await make_harness(server, workspace, {"faulty": FAULTY})
    result = await h.pool.call_tool("faulty", "pid", {})
    pid = int(result.content)
    os.kill(pid, 0)  # alive
    await h.runtime.aclose()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_tool_arguments_are_redacted_in_the_audit_trail(harness: Harness) -> None:
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 3
    harness.model.enqueue(
        ToolCall("mcp__everything__echo", {"message": f"use {key}"}), Text("done")
    )
    result = await harness.run(agent({"everything": ["echo"]}))
    assert harness.tool_message(1) == f"Echo: use {key}"  # the server got the real value
    assert harness.runtime.audit is not None
    events = harness.runtime.audit.query(run_id=result.run_id)
    stored = json.dumps([e.model_dump(mode="json") for e in events])
    assert key not in stored and key[:20] not in stored
    assert "[REDACTED]" in stored


async def test_a_huge_result_is_cut_to_a_bounded_size(harness: Harness) -> None:
    harness.model.enqueue(ToolCall("mcp__everything__echo", {"message": "x" * 50_000}), Text("ok"))
    await harness.run(agent({"everything": ["echo"]}))
    message = harness.tool_message(1)
    assert len(message) < 21_000
    assert "[truncated:" in message


def test_tool_names_are_valid_openai_function_names() -> None:
    assert tool_name("everything", "get-sum") == "mcp__everything__get-sum"
    assert tool_name("my server", "tools/read.file") == "mcp__my_server__tools_read_file"
    long = tool_name("s" * 40, "t" * 40)
    assert len(long) == 64
    assert long != tool_name("s" * 40, "t" * 39 + "u")


def test_names_that_clash_after_sanitizing_stay_unique() -> None:
    names = unique_names([("a", "x.y"), ("a", "x_y"), ("a", "x y")])
    assert list(names) == ["mcp__a__x_y", "mcp__a__x_y_2", "mcp__a__x_y_3"]
    assert names["mcp__a__x_y_2"] == ("a", "x_y")


def test_structured_content_reaches_the_model_once() -> None:
    from mcp import types

    result = types.CallToolResult(
        content=[types.TextContent(type="text", text='{"sum": 3}')],
        structured_content={"sum": 3},
    )
    assert render_result(result).content == '{"sum": 3}'
    only = types.CallToolResult(content=[], structured_content={"sum": 3}, is_error=True)
    rendered = render_result(only)
    assert rendered.is_error
    assert rendered.content == 'error: structured content: {"sum": 3}'


def write_config(path: Path, servers: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")


def test_later_sources_win_by_name(workspace: Path) -> None:
    write_config(
        user_config_file(),
        {"a": {"command": "user-a"}, "b": {"command": "user-b"}, "u": {"command": "user-u"}},
    )
    write_config(workspace / ".mcp.json", {"a": {"command": "project-a"}, "p": {"command": "p"}})
    write_config(
        workspace / ".agentls" / "mcp.json", {"a": {"command": "ws-a"}, "b": {"command": "ws-b"}}
    )
    config = load_mcp_config(workspace, {"a": McpServerSettings(command="editor-a")})
    commands = {name: s.settings.command for name, s in config.servers.items()}
    assert commands == {"a": "editor-a", "b": "ws-b", "u": "user-u", "p": "p"}
    assert config.servers["b"].origin == f"workspace ({workspace / '.agentls' / 'mcp.json'})"
    assert config.servers["a"].origin == "editor setting"
    assert config.errors == []


def test_an_untrusted_workspace_keeps_its_servers_out(workspace: Path) -> None:
    write_config(user_config_file(), {"mine": {"command": "mine"}})
    write_config(workspace / ".mcp.json", {"theirs": {"command": "rm", "args": ["-rf", "/"]}})
    write_config(workspace / ".agentls" / "mcp.json", {"mine": {"command": "evil"}})
    config = load_mcp_config(workspace, trusted=False)
    assert {n: s.settings.command for n, s in config.servers.items()} == {"mine": "mine"}
    assert config.untrusted == ["theirs"]
    pool = McpPool(workspace, config)
    with pytest.raises(McpServerError, match="workspace is not trusted"):
        pool.server("theirs")


def test_invalid_json_names_the_file_and_place_and_other_files_still_load(
    workspace: Path,
) -> None:
    write_config(user_config_file(), {"fine": {"command": "fine"}})
    bad = workspace / ".agentls" / "mcp.json"
    bad.parent.mkdir()
    bad.write_text('{"mcpServers": {\n  "x": {"command": "x",}\n}}', encoding="utf-8")
    config = load_mcp_config(workspace)
    assert list(config.servers) == ["fine"]
    assert len(config.errors) == 1
    assert config.errors[0].startswith(f"{bad}:2:")
    assert "invalid JSON" in config.errors[0]


def test_an_invalid_entry_names_its_field_and_its_neighbours_still_load(workspace: Path) -> None:
    write_config(
        workspace / ".mcp.json",
        {
            "both": {"command": "x", "url": "http://127.0.0.1:1/mcp"},
            "neither": {"args": ["a"]},
            "typo": {"command": "x", "arg": ["a"]},
            "badargs": {"command": "x", "args": "a b"},
            "ok": {"command": "ok"},
            "web": {"type": "http", "url": "http://127.0.0.1:1/mcp", "headers": {"X": "y"}},
        },
    )
    config = load_mcp_config(workspace)
    assert sorted(config.servers) == ["ok", "web"]
    errors = "\n".join(config.errors)
    path = workspace / ".mcp.json"
    assert f'{path}: mcpServers.both: Value error, give exactly one of "command"' in errors
    assert f"{path}: mcpServers.neither: Value error, give exactly one of" in errors
    assert f"{path}: mcpServers.typo.arg: Extra inputs are not permitted" in errors
    assert f"{path}: mcpServers.badargs.args: Input should be a valid list" in errors


def test_variables_expand_like_claude_code(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_TOKEN", "t0k")
    monkeypatch.delenv("DEMO_UNSET", raising=False)
    write_config(
        workspace / ".mcp.json",
        {
            "a": {
                "command": "srv",
                "env": {"TOKEN": "${DEMO_TOKEN}", "MODE": "${DEMO_UNSET:-dev}"},
            },
            "b": {"command": "srv", "args": ["${DEMO_UNSET}"]},
        },
    )
    config = load_mcp_config(workspace)
    assert config.servers["a"].settings.env == {"TOKEN": "t0k", "MODE": "dev"}
    assert config.errors == [
        f"{workspace / '.mcp.json'}: mcpServers.b: environment variable DEMO_UNSET is not set "
        "(write ${NAME:-default} to give a default)"
    ]


async def test_a_config_file_edit_applies_to_the_next_run(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    h = await make_harness(server, workspace, {})
    try:
        server.enqueue(ToolCall("mcp__everything__get-sum", {"a": 1, "b": 1}), Text("2"))
        failed = await h.run(agent({"everything": ["get-sum"]}))
        assert failed.status is RunStatus.FAILED
        write_config(workspace / ".agentls" / "mcp.json", {"everything": EVERYTHING.model_dump()})
        result = await h.run(agent({"everything": ["get-sum"]}))
        assert result.status is RunStatus.FINISHED, result.error
        assert h.tool_message(1) == "The sum of 1 and 1 is 2."
    finally:
        await h.runtime.aclose()


def faulty_over_http(*options: str) -> Iterator[str]:
    """The faulty server over Streamable HTTP on 127.0.0.1; yields its URL once it listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = REPO / "tests" / "rig" / "faulty_mcp_server.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--http", str(port), *options],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # uvicorn says when it listens
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("the HTTP MCP server exited before listening")
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def http_server() -> Iterator[str]:
    yield from faulty_over_http()


@pytest.fixture
def unsized_http_server() -> Iterator[str]:
    """Its responses come chunked, with no Content-Length to refuse them by."""
    yield from faulty_over_http("--no-length")


async def test_a_url_server_is_reached_over_streamable_http(
    server: ScriptedOpenAI, workspace: Path, http_server: str
) -> None:
    h = await make_harness(server, workspace, {"remote": McpServerSettings(url=http_server)})
    try:
        server.enqueue(ToolCall("mcp__remote__pid", {}), Text("done"))
        result = await h.run(agent({"remote": ["pid"]}))
        assert result.status is RunStatus.FINISHED, result.error
        assert h.tool_message(1).isdigit()
    finally:
        await h.runtime.aclose()


async def test_a_url_server_that_is_down_fails_the_run_naming_the_url(
    server: ScriptedOpenAI, workspace: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/mcp"
    h = await make_harness(server, workspace, {"remote": McpServerSettings(url=url)})
    try:
        result = await h.run(agent({"remote": "*"}))
    finally:
        await h.runtime.aclose()
    assert result.status is RunStatus.FAILED
    assert (result.error or "").startswith(f"MCP server 'remote' ({url}, from editor setting)")


def test_a_definition_allows_all_tools_of_a_server_with_a_star() -> None:
    assert agent({"everything": "*"}).mcp == {"everything": "*"}
    with pytest.raises(ValueError, match=r"mcp\.everything"):
        agent({"everything": "all"})


async def test_cancelling_a_run_in_an_mcp_call_ends_it_and_keeps_the_session(
    harness: Harness,
) -> None:
    harness.model.enqueue(ToolCall("mcp__faulty__hang", {}))
    calling = asyncio.Event()
    harness.runtime.subscribe(lambda e: calling.set() if e.kind is EventKind.TOOL_STARTED else None)
    run = asyncio.create_task(harness.run(agent({"faulty": ["hang"]})))
    await calling.wait()
    harness.runtime.cancel()
    result = await run
    assert result.status is RunStatus.CANCELLED
    after = await harness.pool.call_tool("faulty", "pid", {})
    assert after.content.split("\n")[0].isdigit()
    assert harness.pool.starts["faulty"] == 1


async def test_a_broken_config_file_is_logged_once_and_the_run_goes_on(
    harness: Harness, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (workspace / ".mcp.json").write_text("{oops", encoding="utf-8")
    harness.model.enqueue(
        ToolCall("mcp__everything__get-sum", {"a": 1, "b": 2}), Text("3"), Text("again")
    )
    first = await harness.run(agent({"everything": ["get-sum"]}))
    second = await harness.run(agent({"everything": ["get-sum"]}))
    assert [first.status, second.status] == [RunStatus.FINISHED, RunStatus.FINISHED]
    warnings = [r.getMessage() for r in caplog.records if r.name == "agentls.mcp"]
    assert warnings == [
        f"MCP configuration: {workspace / '.mcp.json'}:1:2: invalid JSON: "
        "Expecting property name enclosed in double quotes"
    ]


CLAUDE_MCP_AGENT = """\
---
name: issue-filer
description: Files issues
tools: Read, mcp__github__create_issue, mcp__github__list_issues, mcp__time
---
File an issue for each bug you find.
"""


def test_a_claude_code_agent_keeps_its_mcp_tools(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "agents" / "issue-filer.md"
    path.parent.mkdir(parents=True)
    path.write_text(CLAUDE_MCP_AGENT, encoding="utf-8")
    loaded = load_file(path, "claude", claude=True)
    assert loaded.errors == []
    definition = loaded.agents[0].definition
    assert definition.mode is Mode.TOOLS
    assert definition.tools == ["read_file"]
    assert definition.mcp == {"github": ["create_issue", "list_issues"], "time": "*"}


def test_a_bad_server_in_the_editor_setting_leaves_only_that_server_out() -> None:
    from agentls.lsp.settings import parse_settings

    settings, problems = parse_settings(
        {
            "mcpServers": {
                "both": {"command": "x", "url": "http://127.0.0.1:1/mcp"},
                "fine": {"command": "node", "args": ["server.js"]},
                "web": {"url": "http://127.0.0.1:1/mcp"},
            },
            "mcpCallTimeout": 5,
        }
    )
    engine = settings.engine(trusted=True)
    assert sorted(engine.mcp_servers) == ["fine", "web"]
    assert engine.mcp_call_timeout == 5
    assert len(problems) == 1
    assert problems[0].startswith("setting agentls.mcpServers.both: Value error, give exactly one")
    assert problems[0].endswith("; keeping the default")


async def test_a_message_too_big_ends_the_connection_and_the_next_call_restarts(
    harness: Harness,
) -> None:
    harness.model.enqueue(
        ToolCall("mcp__faulty__flood", {}), ToolCall("mcp__faulty__pid", {}), Text("ok")
    )
    result = await harness.run(agent({"faulty": ["flood", "pid"]}))
    assert result.status is RunStatus.FINISHED, result.error
    flood = harness.tool_message(1)
    assert flood.startswith("error: MCP server 'faulty'")
    assert "sent a message of more than 16,777,216 characters" in flood
    assert harness.tool_message(2).isdigit()
    assert harness.pool.starts["faulty"] == 2


@pytest.mark.parametrize("length", ["announced", "not announced"])
async def test_a_url_server_result_too_big_is_refused_naming_server_and_tool(
    server: ScriptedOpenAI, workspace: Path, length: str, request: pytest.FixtureRequest
) -> None:
    # The same bound as a stdio server's messages: 16 MiB; `flood` answers with 20 MB of text
    # (40 MB of JSON). Without a Content-Length the body is counted as it arrives.
    url = request.getfixturevalue("http_server" if length == "announced" else "unsized_http_server")
    h = await make_harness(server, workspace, {"remote": McpServerSettings(url=url)})
    try:
        server.enqueue(
            ToolCall("mcp__remote__flood", {}), ToolCall("mcp__remote__pid", {}), Text("ok")
        )
        result = await h.run(agent({"remote": ["flood", "pid"]}))
        assert result.status is RunStatus.FINISHED, result.error
        flood = h.tool_message(1)
        assert flood.startswith("error: MCP server 'remote': flood answered with more than "), (
            flood[:300]
        )
        assert "16,777,216 bytes, so agentls refused the result" in flood
        assert h.tool_message(2).isdigit()  # the session goes on serving
        assert h.pool.starts["remote"] == 1
    finally:
        await h.runtime.aclose()


async def test_a_servers_progress_shows_in_the_run_while_its_tool_works(
    harness: Harness,
) -> None:
    # server-everything reports each of the 4 steps (progress/total, no message).
    seen: list[Any] = []
    harness.runtime.subscribe(seen.append)
    operation = {"duration": 1.2, "steps": 4}
    harness.model.enqueue(
        ToolCall("mcp__everything__trigger-long-running-operation", operation), Text("done")
    )
    result = await harness.run(agent({"everything": ["trigger-long-running-operation"]}))
    assert result.status is RunStatus.FINISHED, result.error
    progress = [e.data for e in seen if e.kind is EventKind.TOOL_STARTED and e.data.get("progress")]
    assert [p["arguments"] for p in progress] == ["→ 1/4", "→ 2/4", "→ 3/4", "→ 4/4"]
    assert {p["tool"] for p in progress} == {"mcp__everything__trigger-long-running-operation"}
