"""`agentls acp` driven by a client the project did not write: the official ACP TypeScript SDK
(tests/acp/client.mjs) plays an editor's agent panel over stdio against the scripted model.

Each scenario runs the Node client once (module-scoped) and the tests read its transcript.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "tests" / "acp" / "client.mjs"
SDK = ROOT / "tests" / "node" / "node_modules" / "@agentclientprotocol" / "sdk"

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
# The editor's buffer has an unsaved line the disk does not: reads must come from the client, and
# an edit the agent proposed against the disk must land where its text is in the buffer.
BUFFER = "# unsaved note\n" + SOURCE
SELECTION = "def sub(a, b):\n    return a - b\n"
ANSWER = "I rewrote sub so that it reads as a negation of the difference."
FIXER = """\
name: fixer
description: Reads the code and proposes fixes
instructions: You fix code. Read it, then propose an edit.
mode: tools
tools: [read_file, propose_edit]
budget: 20000
max_turns: 4
"""


def run_client(plan: dict[str, Any]) -> dict[str, Any]:
    if shutil.which("node") is None or not SDK.is_dir():
        raise RuntimeError(
            "node and tests/node/node_modules are needed: scripts/setup-test-node.sh"
        )
    plan_file = Path(plan["cwd"]) / ".." / f"plan-{os.getpid()}.json"
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    done = subprocess.run(
        ["node", str(CLIENT), str(plan_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    transcript: dict[str, Any] = json.loads(done.stdout)
    assert "error" not in transcript, transcript.get("error")
    return transcript


def agent_env(server: ScriptedOpenAI, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTLS_"))}
    return env | {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-test", "HOME": str(home)}


def trust_in_user_settings(home: Path, workspace: Path) -> None:
    """The user trusts the folder in ~/.config/agentls/settings.json (its agents then load)."""
    path = home / ".config" / "agentls" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"trustedFolders": [str(workspace)]}), encoding="utf-8")


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "agentls", "acp", "--model", "scripted-model", *extra]


def text_of(updates: list[dict[str, Any]]) -> str:
    return "".join(
        u["content"]["text"] for u in updates if u["sessionUpdate"] == "agent_message_chunk"
    )


def of_kind(updates: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [u for u in updates if u["sessionUpdate"] == kind]


def diff_calls(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The review cards: tool calls that carry a diff (the propose_edit call itself has none)."""
    return [
        u
        for u in of_kind(updates, "tool_call")
        if any(c["type"] == "diff" for c in u.get("content") or [])
    ]


def file_uri(path: Path) -> str:
    return path.as_uri()


# --- the panel's main flow: selection → tools → diff → permission → write → usage → cancel -------


@pytest.fixture(scope="module")
def main_flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("acp-main")
    workspace = base / "ws"
    (workspace / ".agentls" / "agents").mkdir(parents=True)
    (workspace / ".agentls" / "agents" / "fixer.yaml").write_text(FIXER, encoding="utf-8")
    (workspace / "calc.py").write_text(SOURCE, encoding="utf-8")
    trust_in_user_settings(base / "home", workspace)
    calc = str(workspace / "calc.py")
    with ScriptedOpenAI() as server:
        server.enqueue(
            ToolCall("read_file", {"path": "calc.py"}),
            ToolCall(
                "propose_edit",
                {
                    "path": "calc.py",
                    "old_text": "return a - b",
                    "new_text": "return -(b - a)",
                    "description": "Negate the difference",
                },
            ),
            Text(ANSWER),
            # The cancelled run: a long answer, streamed slowly; the client cancels on its first chunk.
            Text("word " * 400, chunk_delay=0.05),
            Text("It adds and subtracts numbers."),
        )
        transcript = run_client(
            {
                # Named, so the test holds whether or not an orchestrator agent is built in.
                "command": command("--default-agent", "explain"),
                "cwd": str(workspace),
                "env": agent_env(server, base / "home"),
                "clientFs": True,
                "files": {calc: BUFFER},
                "permission": "allow_once",
                "prompts": [
                    {
                        "blocks": [
                            {"type": "text", "text": "/fixer make sub clearer"},
                            {
                                "type": "resource",
                                "resource": {
                                    "uri": f"{file_uri(workspace / 'calc.py')}#L6:7",
                                    "text": SELECTION,
                                    "mimeType": "text/x-python",
                                },
                            },
                        ]
                    },
                    {
                        "blocks": [{"type": "text", "text": "/explain walk me through it"}],
                        "cancelOn": "agent_message_chunk",
                    },
                    {"blocks": [{"type": "text", "text": "what does this file do?"}]},
                ],
                "listSessions": True,
                "loadSession": True,
                "closeSession": True,
            }
        )
        transcript["workspace"] = str(workspace)
        transcript["requests"] = list(server.requests)
        yield transcript


def test_initialize_advertises_sessions_and_embedded_context(main_flow: dict[str, Any]) -> None:
    init = main_flow["initialize"]
    assert init["protocolVersion"] == 1
    caps = init["agentCapabilities"]
    assert caps["loadSession"] is True
    assert caps["promptCapabilities"]["embeddedContext"] is True
    assert {"list", "close", "resume"} <= set(caps["sessionCapabilities"])
    assert init["agentInfo"]["name"] == "agentls"


def test_agents_are_offered_as_slash_commands(main_flow: dict[str, Any]) -> None:
    updates = main_flow["idle"]["updates"] + main_flow["prompts"][0]["updates"]
    (offer, *_) = of_kind(updates, "available_commands_update")
    names = [c["name"] for c in offer["availableCommands"]]
    assert {"review", "explain", "fixer", "parallel", "create", "budget"} <= set(names)


def test_the_selection_is_the_target_read_from_the_client_buffer(
    main_flow: dict[str, Any],
) -> None:
    calc = str(Path(main_flow["workspace"]) / "calc.py")
    assert calc in main_flow["prompts"][0]["reads"]
    first_user = main_flow["requests"][0]["messages"][1]["content"]
    assert "calc.py (lines 6-7)" in first_user
    assert "return a - b" in first_user
    assert "# unsaved" not in first_user  # only the selected lines, taken from the buffer


def test_tool_calls_show_as_tool_call_and_completed_update(main_flow: dict[str, Any]) -> None:
    updates = main_flow["prompts"][0]["updates"]
    (read,) = [u for u in of_kind(updates, "tool_call") if "read_file" in u["title"]]
    assert read["status"] == "in_progress" and read["kind"] == "read"
    done = [
        u for u in of_kind(updates, "tool_call_update") if u["toolCallId"] == read["toolCallId"]
    ]
    assert [u["status"] for u in done] == ["completed"]


def test_proposed_edit_is_shown_as_a_diff_of_the_buffer(main_flow: dict[str, Any]) -> None:
    updates = main_flow["prompts"][0]["updates"]
    (edit,) = diff_calls(updates)
    assert edit["status"] == "pending" and edit["kind"] == "edit"
    (diff,) = edit["content"]
    assert diff["type"] == "diff"
    assert diff["path"] == str(Path(main_flow["workspace"]) / "calc.py")
    assert diff["oldText"] == BUFFER
    assert diff["newText"] == BUFFER.replace("return a - b", "return -(b - a)")


def test_edit_is_written_through_the_client_after_permission(main_flow: dict[str, Any]) -> None:
    prompt = main_flow["prompts"][0]
    (asked,) = prompt["permissions"]
    (edit,) = diff_calls(prompt["updates"])
    assert asked["toolCall"]["toolCallId"] == edit["toolCallId"]
    assert [o["kind"] for o in asked["options"]] == ["allow_once", "allow_always", "reject_once"]
    calc = str(Path(main_flow["workspace"]) / "calc.py")
    expected = BUFFER.replace("return a - b", "return -(b - a)")
    assert prompt["writes"] == [{"path": calc, "content": expected}]
    assert Path(calc).read_text(encoding="utf-8") == SOURCE  # the disk is the editor's business
    closing = [
        u
        for u in of_kind(prompt["updates"], "tool_call_update")
        if u["toolCallId"] == edit["toolCallId"]
    ]
    assert closing[-1]["status"] == "completed"


def test_answer_streams_before_the_run_asks_to_write(main_flow: dict[str, Any]) -> None:
    prompt = main_flow["prompts"][0]
    order = prompt["order"]
    assert order.index("agent_message_chunk") < order.index("request_permission")
    assert order.index("request_permission") < order.index("write_text_file")
    assert text_of(prompt["updates"]) == ANSWER
    assert prompt["stopReason"] == "end_turn"


def test_usage_updates_count_against_the_run_budget(main_flow: dict[str, Any]) -> None:
    usage = of_kind(main_flow["prompts"][0]["updates"], "usage_update")
    assert len(usage) == 3  # one per model call
    assert all(u["size"] == 20000 for u in usage)  # fixer's budget is the tightest limit
    used = [u["used"] for u in usage]
    assert used == sorted(used) and used[0] > 0


def test_cancel_mid_run_ends_the_prompt_cancelled(main_flow: dict[str, Any]) -> None:
    prompt = main_flow["prompts"][1]
    assert prompt["cancelSentAfter"] >= 1
    assert prompt["stopReason"] == "cancelled"
    assert len(text_of(prompt["updates"])) < len("word " * 400)


def test_next_prompt_after_cancel_goes_to_the_configured_default_agent(
    main_flow: dict[str, Any],
) -> None:
    prompt = main_flow["prompts"][2]
    assert prompt["stopReason"] == "end_turn"
    assert text_of(prompt["updates"]) == "It adds and subtracts numbers."
    system = main_flow["requests"][-1]["messages"][0]["content"]
    assert "You explain code" in system


def test_runs_from_the_panel_are_in_the_workspace_audit_trail(main_flow: dict[str, Any]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentls", "--workspace", main_flow["workspace"], "audit", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    closing = {(e["agent"], e["kind"]) for e in events}
    assert {("fixer", "finished"), ("explain", "cancelled"), ("explain", "finished")} <= closing
    assert ("fixer", "edit_applied") in closing


def test_sessions_are_listed_loaded_with_history_and_closed(main_flow: dict[str, Any]) -> None:
    (listed,) = main_flow["sessions"]["sessions"]
    assert listed["sessionId"] == main_flow["sessionId"]
    assert listed["title"] == "/fixer make sub clearer"
    replay = main_flow["loaded"]["updates"]
    users = [u["content"]["text"] for u in of_kind(replay, "user_message_chunk")]
    assert users == [
        "/fixer make sub clearer",
        "/explain walk me through it",
        "what does this file do?",
    ]
    assert ANSWER in text_of(replay)
    assert main_flow["closed"] == {}


# --- errors: told in the session, and the agent keeps serving -----------------------------------


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("acp-errors")
    workspace = base / "ws"
    workspace.mkdir()
    (workspace / "calc.py").write_text(SOURCE, encoding="utf-8")
    outside = base / "outside.py"
    outside.write_text("secret = 1\n", encoding="utf-8")
    calc_link = {"type": "resource_link", "uri": file_uri(workspace / "calc.py"), "name": "calc.py"}
    with ScriptedOpenAI() as server:
        server.enqueue(Text("It is fine."))
        transcript = run_client(
            {
                "command": command(),
                "cwd": str(workspace),
                "env": agent_env(server, base / "home"),
                "clientFs": False,
                "prompts": [
                    {"blocks": [{"type": "text", "text": "/nosuch do it"}]},
                    {"blocks": [calc_link]},
                    {
                        "blocks": [
                            {"type": "text", "text": "/explain this"},
                            {
                                "type": "resource_link",
                                "uri": file_uri(outside),
                                "name": "outside.py",
                            },
                        ]
                    },
                    {"blocks": [{"type": "text", "text": "/budget set 10"}]},
                    {"blocks": [{"type": "text", "text": "/explain this"}, calc_link]},
                    {
                        "blocks": [
                            {"type": "text", "text": "/parallel review,explain this"},
                            calc_link,
                        ]
                    },
                    {"blocks": [{"type": "text", "text": "/budget set none"}]},
                    {"blocks": [{"type": "text", "text": "/explain this"}, calc_link]},
                ],
            }
        )
        transcript["requests"] = list(server.requests)
        yield transcript


def test_unknown_slash_command_names_it_and_the_commands(errors: dict[str, Any]) -> None:
    prompt = errors["prompts"][0]
    message = text_of(prompt["updates"])
    assert "Unknown command /nosuch" in message and "/explain" in message
    assert prompt["stopReason"] == "end_turn"


def test_prompt_without_text_says_what_to_write(errors: dict[str, Any]) -> None:
    prompt = errors["prompts"][1]
    assert "The prompt has no text" in text_of(prompt["updates"])
    assert prompt["stopReason"] == "end_turn"


def test_resource_outside_the_workspace_is_refused_by_name(errors: dict[str, Any]) -> None:
    prompt = errors["prompts"][2]
    message = text_of(prompt["updates"])
    assert "outside.py is outside the workspace" in message
    assert prompt["stopReason"] == "end_turn"


def test_budget_exceeded_is_told_and_the_model_is_not_called(errors: dict[str, Any]) -> None:
    assert "limit 10" in text_of(errors["prompts"][3]["updates"])
    prompt = errors["prompts"][4]
    message = text_of(prompt["updates"])
    assert "explain** stopped" in message and "/budget set N" in message
    assert len(errors["requests"]) == 1  # only the last prompt reached the model


def test_a_turn_stopped_by_the_budget_ends_normally_not_as_a_refusal(
    errors: dict[str, Any],
) -> None:
    # Zed treats `refusal` as a content-policy refusal and deletes the turn, message included.
    single, parallel = errors["prompts"][4], errors["prompts"][5]
    assert single["stopReason"] == "end_turn"
    assert parallel["stopReason"] == "end_turn"
    message = text_of(parallel["updates"])
    assert "review** stopped" in message and "explain** stopped" in message


def test_agent_keeps_serving_after_every_error(errors: dict[str, Any]) -> None:
    last = errors["prompts"][-1]
    assert last["stopReason"] == "end_turn"
    assert text_of(last["updates"]) == "It is fine."
    assert errors["exitCode"] == 0


def test_the_panel_parses_a_token_limit_as_the_cli_does() -> None:
    # One parser: `12345678901234567` was refused by the CLI and became ...568 in ACP.
    from agentls.acp.turn import parse_limit
    from agentls.cli import CliError
    from agentls.cli.budget import parse_limit as cli_parse_limit

    for text in ("200k", "1.5M", "2e5", "20_000", "20,000", "none", "999999999999999"):
        assert parse_limit(text) == cli_parse_limit(text)
    for text in ("12345678901234567", "1.5", "-3", "lots"):
        with pytest.raises(ValueError) as acp_error:
            parse_limit(text)
        with pytest.raises(CliError) as cli_error:
            cli_parse_limit(text)
        assert str(acp_error.value) in str(cli_error.value)
