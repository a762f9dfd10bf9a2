"""What agent panels rely on, driven by the official ACP TypeScript SDK (tests/acp/client.mjs):
an auth method the ACP registry accepts, sessions that exist from `session/new` on and keep the
picked agent across a restart of the agent process, targets named in the text of a text-only
client, and token use in the prompt response.

Each scenario runs the Node client once (module-scoped); a restart is a second client run, which
starts a new agent process on the same workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text
from tests.test_acp import agent_env, command, of_kind, run_client, text_of

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
DOCUMENTED_SUB = 'def sub(a, b):\n    """a minus b."""\n    return a - b\n'
REVIEWER = "You are a careful senior reviewer"


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


def picked(session_response: dict[str, Any]) -> str:
    (option,) = session_response["configOptions"]
    assert option["id"] == "agent"
    return str(option["currentValue"])


# --- sessions across restarts of the agent process ------------------------------------------------


@pytest.fixture(scope="module")
def restarts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("acp-restarts")
    workspace = base / "ws"
    workspace.mkdir()
    (workspace / "calc.py").write_text(SOURCE, encoding="utf-8")
    with ScriptedOpenAI() as server:
        server.enqueue(Text("Reviewed: fine."))

        def run(**plan: Any) -> dict[str, Any]:
            return run_client(
                {
                    "command": command("--default-agent", "explain"),
                    "cwd": str(workspace),
                    "env": agent_env(server, base / "home"),
                    "prompts": [],
                }
                | plan
            )

        opened = run(listAtStart=True, authenticate=True)  # a thread opened, nothing typed
        picking = run(setConfig=[{"configId": "agent", "value": "review"}])
        reopened = run(loadSessionId=opened["sessionId"])
        after_pick = run(
            loadSessionId=picking["sessionId"],
            prompts=[{"blocks": [text("is it right?")]}],
        )
        yield {
            "opened": opened,
            "picking": picking,
            "reopened": reopened,
            "after_pick": after_pick,
            "requests": list(server.requests),
        }


def test_initialize_offers_an_auth_method_that_needs_no_login(restarts: dict[str, Any]) -> None:
    methods = restarts["opened"]["initialize"]["authMethods"]
    # The registry's check: an entry whose type is agent (the default when none is given) or terminal.
    (method,) = [m for m in methods if m.get("type", "agent") in ("agent", "terminal")]
    assert "No login" in method["name"]
    assert "OPENAI_API_KEY" in method["description"]
    assert "settings.json" in method["description"]
    assert restarts["opened"]["authenticated"] == {}


def test_a_new_session_is_listed_before_its_first_prompt(restarts: dict[str, Any]) -> None:
    opened = restarts["opened"]
    listed = [s["sessionId"] for s in opened["listedAtStart"]["sessions"]]
    assert opened["sessionId"] in listed


def test_a_session_never_prompted_loads_after_the_agent_restarts(
    restarts: dict[str, Any],
) -> None:
    reopened = restarts["reopened"]
    assert "error" not in reopened["session"], reopened["session"]
    assert picked(reopened["session"]) == "explain"
    assert of_kind(reopened["opened"]["updates"], "user_message_chunk") == []


def test_the_picked_agent_is_kept_with_the_session_across_a_restart(
    restarts: dict[str, Any],
) -> None:
    (change,) = restarts["picking"]["configChanges"]
    assert picked(change) == "review"
    after = restarts["after_pick"]
    assert picked(after["session"]) == "review"
    (prompt,) = after["prompts"]
    assert prompt["stopReason"] == "end_turn"
    assert text_of(prompt["updates"]) == "Reviewed: fine."
    (request,) = restarts["requests"]
    assert request["messages"][0]["content"].startswith(REVIEWER)


# --- a client that sends text only: targets named in the command's text --------------------------


@pytest.fixture(scope="module")
def text_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("acp-text-only")
    workspace = base / "ws"
    workspace.mkdir()
    (workspace / "calc.py").write_text(SOURCE, encoding="utf-8")
    (base / "outside.py").write_text("secret = 1\n", encoding="utf-8")
    with ScriptedOpenAI() as server:
        server.enqueue(
            Text(
                "It adds and subtracts.",
                prompt_tokens=90,
                completion_tokens=12,
                cached_tokens=30,
                reasoning_tokens=4,
            ),
            Text(f"```python\n{DOCUMENTED_SUB}```"),
            Text("A function that keeps the variables it uses."),
        )
        transcript = run_client(
            {
                "command": command(),
                "cwd": str(workspace),
                "env": agent_env(server, base / "home"),
                "clientFs": False,
                "permission": "allow_once",
                "prompts": [
                    {"blocks": [text("/explain calc.py")]},
                    {"blocks": [text("/document calc.py:5-6")]},
                    {"blocks": [text("/explain ../outside.py")]},
                    {"blocks": [text("/explain")]},
                    {"blocks": [text("/document nosuch.py")]},
                    {"blocks": [text("/explain what is a closure?")]},
                ],
            }
        )
        transcript["workspace"] = str(workspace)
        transcript["requests"] = list(server.requests)
        yield transcript


def test_a_file_named_after_the_command_is_its_target(text_only: dict[str, Any]) -> None:
    prompt = text_only["prompts"][0]
    assert prompt["stopReason"] == "end_turn"
    user = text_only["requests"][0]["messages"][1]["content"]
    assert "Target: calc.py\n```py\n" + SOURCE in user
    assert "Goal: calc.py" not in user  # the agent's own task, not the file name, is the goal


def test_a_named_line_range_is_the_target_of_an_edit(text_only: dict[str, Any]) -> None:
    prompt = text_only["prompts"][1]
    assert prompt["stopReason"] == "end_turn"
    assert "calc.py (lines 5-6)" in text_only["requests"][1]["messages"][1]["content"]
    (asked,) = prompt["permissions"]
    assert asked["toolCall"]["kind"] == "edit"
    calc = Path(text_only["workspace"]) / "calc.py"
    expected = SOURCE.replace("def sub(a, b):\n", 'def sub(a, b):\n    """a minus b."""\n')
    assert calc.read_text(encoding="utf-8") == expected


def test_a_named_path_outside_the_workspace_is_refused_as_an_attachment_is(
    text_only: dict[str, Any],
) -> None:
    prompt = text_only["prompts"][2]
    message = text_of(prompt["updates"])
    assert f"The path ../outside.py is outside the workspace {text_only['workspace']}." in message
    assert "open the folder that contains the file as the session's workspace" in message
    assert prompt["stopReason"] == "end_turn"


def test_a_command_with_nothing_to_work_on_says_how_to_name_a_target(
    text_only: dict[str, Any],
) -> None:
    bare = text_of(text_only["prompts"][3]["updates"])
    assert "**explain** needs something to work on" in bare
    assert "`/explain src/app.py:3-9`" in bare
    missing = text_of(text_only["prompts"][4]["updates"])
    assert f"nosuch.py is not a file in the workspace {text_only['workspace']}" in missing
    assert "**document** edits a file" in missing and "`/document src/app.py`" in missing


def test_only_the_prompts_with_something_to_work_on_reach_the_model(
    text_only: dict[str, Any],
) -> None:
    assert len(text_only["requests"]) == 3
    closing = text_only["prompts"][5]
    assert closing["stopReason"] == "end_turn"
    assert text_of(closing["updates"]) == "A function that keeps the variables it uses."


def test_the_prompt_response_carries_the_turns_token_use(text_only: dict[str, Any]) -> None:
    prompt = text_only["prompts"][0]
    assert prompt["usage"] == {
        "totalTokens": 102,
        "inputTokens": 90,
        "outputTokens": 12,
        "cachedReadTokens": 30,
        "thoughtTokens": 4,
    }
    (update,) = of_kind(prompt["updates"], "usage_update")  # sent as well, as before
    assert update["used"] > 0
    assert text_only["prompts"][3]["usage"]["totalTokens"] == 0  # told, no model call
