"""`agentls mcp list | call | add`, run as the installed command against real MCP servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

REPO = Path(__file__).resolve().parents[1]
AGENTLS = str(Path(sys.executable).with_name("agentls"))
EVERYTHING = str(
    REPO / "tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)


def agentls(workspace: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTLS, "--workspace", str(workspace), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def with_everything(workspace: Path) -> Path:
    done = agentls(workspace, "mcp", "add", "everything", "--", "node", EVERYTHING)
    assert done.returncode == 0, done.stderr
    return workspace


def config_of(workspace: Path) -> dict[str, object]:
    data = json.loads((workspace / ".agentls" / "mcp.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_add_writes_the_workspace_config(workspace: Path) -> None:
    done = agentls(workspace, "mcp", "add", "everything", "--env", "K=v", "--", "node", EVERYTHING)
    assert done.returncode == 0, done.stderr
    assert f"Added MCP server 'everything' (node {EVERYTHING})" in done.stdout
    assert config_of(workspace) == {
        "mcpServers": {"everything": {"command": "node", "args": [EVERYTHING], "env": {"K": "v"}}}
    }


def test_add_keeps_the_other_entries_and_fields(workspace: Path) -> None:
    path = workspace / ".agentls" / "mcp.json"
    path.parent.mkdir()
    existing = {"mcpServers": {"time": {"command": "mcp-server-time"}}, "comment": "mine"}
    path.write_text(json.dumps(existing), encoding="utf-8")
    done = agentls(workspace, "mcp", "add", "web", "--url", "http://127.0.0.1:9/mcp")
    assert done.returncode == 0, done.stderr
    assert config_of(workspace) == {
        "mcpServers": {
            "time": {"command": "mcp-server-time"},
            "web": {"url": "http://127.0.0.1:9/mcp"},
        },
        "comment": "mine",
    }


def test_add_refuses_to_overwrite_a_broken_file(workspace: Path) -> None:
    path = workspace / ".agentls" / "mcp.json"
    path.parent.mkdir()
    path.write_text("{not json", encoding="utf-8")
    done = agentls(workspace, "mcp", "add", "x", "--", "x")
    assert done.returncode == 2
    assert f"{path}:1:2: invalid JSON" in done.stderr
    assert path.read_text(encoding="utf-8") == "{not json"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bad name", "--", "x"], "NAME 'bad name': use 1-48 letters"),
        (["x"], "COMMAND: missing"),
        (["x", "--url", "http://h/mcp", "--", "node"], "either --url URL or -- COMMAND"),
        (["x", "--env", "NOVALUE", "--", "node"], "--env 'NOVALUE': expected KEY=VALUE"),
        (["x", "--url", "ftp://h"], "x.url: String should match pattern"),
    ],
)
def test_add_names_the_argument_at_fault(workspace: Path, argv: list[str], message: str) -> None:
    done = agentls(workspace, "mcp", "add", *argv)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (workspace / ".agentls" / "mcp.json").exists()


def test_list_shows_source_state_and_tools(with_everything: Path) -> None:
    done = agentls(with_everything, "mcp", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"everything  [running]  node {EVERYTHING}"
    assert lines[1] == f"  from: workspace ({with_everything / '.agentls' / 'mcp.json'})"
    assert lines[2].startswith("  tools (") and "get-sum" in lines[2]


def test_list_json_reports_a_server_that_does_not_start(with_everything: Path) -> None:
    agentls(with_everything, "mcp", "add", "broken", "--", "agentls-no-such-server")
    done = agentls(with_everything, "mcp", "list", "--json")
    assert done.returncode == 1
    servers = {s["name"]: s for s in json.loads(done.stdout)["servers"]}
    assert servers["everything"]["state"] == "running"
    assert servers["broken"]["state"] == "failed"
    assert "agentls-no-such-server" in servers["broken"]["error"]


def test_call_prints_the_result(with_everything: Path) -> None:
    done = agentls(with_everything, "mcp", "call", "everything", "get-sum", '{"a": 20, "b": 22}')
    assert (done.returncode, done.stdout) == (0, "The sum of 20 and 22 is 42.\n")


def test_call_exits_1_when_the_tool_reports_an_error(with_everything: Path) -> None:
    done = agentls(with_everything, "mcp", "call", "everything", "get-sum", '{"a": "x"}')
    assert done.returncode == 1
    assert done.stdout.startswith("error: ")
    assert "Invalid arguments for tool get-sum" in done.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["everything", "get-sum", "{a"], "JSON '{a': not valid JSON (line 1, column 2"),
        (["everything", "get-sum", "[1]"], "JSON '[1]': tool arguments must be a JSON object"),
        (["nowhere", "get-sum"], "SERVER 'nowhere': no such MCP server (configured: everything)"),
        (["everything", "get-product"], "TOOL 'get-product': server 'everything' has no such"),
    ],
)
def test_call_names_the_argument_at_fault(
    with_everything: Path, argv: list[str], message: str
) -> None:
    done = agentls(with_everything, "mcp", "call", *argv)
    assert done.returncode == 2
    assert message in done.stderr


def test_list_warns_about_a_broken_config_file_and_still_lists_the_rest(
    with_everything: Path,
) -> None:
    (with_everything / ".mcp.json").write_text('{"mcpServers": 3}', encoding="utf-8")
    done = agentls(with_everything, "mcp", "list")
    assert done.returncode == 1
    assert "mcpServers: expected an object of server name to server" in done.stderr
    assert done.stdout.startswith("everything  [running]")


ADDER = """\
name: adder
description: Adds numbers with an MCP tool
instructions: Add the numbers with the tool.
mode: tools
mcp:
  everything: [get-sum]
"""


def test_agentls_run_gives_an_agent_the_servers_of_the_workspace_config(
    with_everything: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    agents = with_everything / ".agentls" / "agents"
    agents.mkdir(parents=True)
    (agents / "adder.yaml").write_text(ADDER, encoding="utf-8")
    (with_everything / "sum.txt").write_text("2 + 40\n", encoding="utf-8")
    with ScriptedOpenAI() as model:
        model.enqueue(ToolCall("mcp__everything__get-sum", {"a": 2, "b": 40}), Text("42"))
        done = agentls(
            with_everything,
            "run",
            "adder",
            "--file",
            str(with_everything / "sum.txt"),
            "--base-url",
            model.url,
            "--model",
            "scripted-model",
            "--json",
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["text"] == "42"
        tool = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
        assert "\nThe sum of 2 and 40 is 42.\n" in tool[0]["content"]


def test_untrusted_leaves_the_workspace_servers_out(with_everything: Path) -> None:
    listing = agentls(with_everything, "--untrusted", "mcp", "list")
    assert listing.returncode == 0, listing.stderr
    assert (
        listing.stdout == "everything  [not used: --untrusted leaves out the workspace's servers]\n"
    )
    call = agentls(with_everything, "--untrusted", "mcp", "call", "everything", "get-sum", "{}")
    assert call.returncode == 2
    assert "SERVER 'everything': comes from the workspace's configuration" in call.stderr
