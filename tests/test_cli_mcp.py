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


NOISY_SERVER = """\
import sys
print("usage: noisy [options]")
print("")
sys.stdout.flush()
from mcp.server import MCPServer
server = MCPServer("noisy")
@server.tool()
def hello(name: str) -> str:
    return f"hi {name}"
server.run()
"""


def test_a_server_that_prints_a_usage_line_on_stdout_gets_one_warning(workspace: Path) -> None:
    (workspace / "noisy.py").write_text(NOISY_SERVER, encoding="utf-8")
    done = agentls(
        workspace, "mcp", "add", "noisy", "--", sys.executable, str(workspace / "noisy.py")
    )
    assert done.returncode == 0, done.stderr

    listing = agentls(workspace, "mcp", "list")

    assert listing.returncode == 0, listing.stderr
    assert "tools (1): hello" in listing.stdout
    assert "Traceback" not in listing.stderr and "pydantic" not in listing.stderr
    (warning,) = listing.stderr.strip().splitlines()
    assert "'noisy'" in warning and "not JSON-RPC" in warning and "usage: noisy" in warning


def test_add_refuses_the_reserved_name_agentls(workspace: Path) -> None:
    done = agentls(workspace, "mcp", "add", "agentls", "--", AGENTLS, "mcp-server")
    assert done.returncode == 2
    assert "'agentls' is reserved" in done.stderr and "agentls-self" in done.stderr
    assert not (workspace / ".agentls" / "mcp.json").exists()


def test_list_says_which_server_of_the_same_name_a_source_replaces(
    with_everything: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("home")
    user_file = home / ".config" / "agentls" / "mcp.json"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(json.dumps({"mcpServers": {"everything": {"command": "nope"}}}))

    listing = subprocess.run(
        [AGENTLS, "--workspace", str(with_everything), "mcp", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
    )

    (server,) = json.loads(listing.stdout)["servers"]
    assert server["source"] == "workspace"
    assert server["replaces"] == [f"user ({user_file})"]


def test_agentls_as_a_users_mcp_server_reaches_the_same_model(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `agentls mcp add self -- agentls mcp-server` used to answer from the embedded model.
    (workspace / "calc.py").write_text("x = 1\n", encoding="utf-8")
    done = agentls(workspace, "mcp", "add", "self", "--", AGENTLS, "mcp-server")
    assert done.returncode == 0, done.stderr
    with ScriptedOpenAI() as model:
        model.enqueue(Text("x is one"))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", model.url)
        monkeypatch.setenv("AGENTLS_MODEL", "scripted-model")
        arguments = json.dumps({"agent": "explain", "goal": "explain x", "file": "calc.py"})
        call = agentls(workspace, "mcp", "call", "self", "delegate", arguments)
        assert call.returncode == 0, call.stderr
        assert "x is one" in call.stdout
        assert len(model.requests) == 1
