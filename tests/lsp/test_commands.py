"""workspace/executeCommand: each agentls command, and bad input answered with InvalidParams.

Every bad-input test ends by checking the server still serves: one broken request must never take
the server down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, lsp_range, open_file, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI, Text

BUILTIN_AGENTS = {
    "document",
    "explain",
    "orchestrator",
    "refactor",
    "research",
    "review",
    "write-tests",
}


async def still_serving(client: LanguageClient) -> None:
    agents = await execute(client, "agentls.listAgents")
    assert {a["name"] for a in agents} >= BUILTIN_AGENTS


async def test_list_agents_names_every_agent_with_its_code_action(client: LanguageClient) -> None:
    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}

    assert set(agents) == BUILTIN_AGENTS
    assert agents["review"]["codeAction"] == "Review selection"
    assert agents["review"]["source"] == "builtin"
    assert agents["review"]["description"]
    assert agents["research"]["codeAction"] is None


async def test_delegate_answers_with_the_run_result(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text("total() subtracts the discount after summing; fine."))

    result = await execute(
        client,
        "agentls.delegate",
        {
            "agent": "review",
            "goal": "check the discount",
            "uri": uri,
            "range": lsp_range((0, 0), (5, 0)),
        },
    )

    assert result["status"] == "finished"
    assert result["agent"] == "review"
    assert result["text"] == "total() subtracts the discount after summing; fine."
    assert result["edits"] == []
    assert result["usage"]["total"] > 0
    assert result["durationMs"] > 0
    assert result["error"] is None
    user = model.requests[0]["messages"][-1]["content"]
    assert "check the discount" in user
    assert "def total(prices, discount):" in user
    assert "def mean" not in user, "only the selected range goes to the model"


async def test_delegate_reads_a_file_the_editor_has_not_opened(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    model.enqueue(Text("Computes a total and a mean."))

    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "explain", "uri": uri_of(workspace / "src" / "app.py")},
    )

    assert result["status"] == "finished"
    assert "def mean(values):" in model.requests[0]["messages"][-1]["content"]


async def test_cancel_without_runs_cancels_nothing(client: LanguageClient) -> None:
    assert await execute(client, "agentls.cancel") == {"cancelled": []}


async def test_budget_set_get_and_reset(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    assert (await execute(client, "agentls.budget"))["limit"] is None

    snapshot = await execute(client, "agentls.budget", {"action": "set", "limit": 50_000})
    assert snapshot["limit"] == 50_000
    snapshot = await execute(
        client, "agentls.budget", {"action": "set", "limit": 9_000, "agent": "review"}
    )
    assert snapshot["agents"]["review"]["limit"] == 9_000

    model.enqueue(Text("fine"))
    run = await execute(
        client, "agentls.delegate", {"agent": "review", "uri": uri_of(workspace / "src" / "app.py")}
    )
    spent = run["usage"]["total"]
    snapshot = await execute(client, "agentls.budget", {"action": "get"})
    assert snapshot["used"] == spent
    assert snapshot["remaining"] == 50_000 - spent
    assert snapshot["agents"]["review"] == {
        "used": spent,
        "limit": 9_000,
        "remaining": 9_000 - spent,
        "reserved": 0,
    }

    snapshot = await execute(client, "agentls.budget", {"action": "reset"})
    assert snapshot["used"] == 0
    assert snapshot["limit"] == 50_000, "a reset zeroes usage and keeps limits"
    assert snapshot["agents"]["review"]["used"] == 0


async def test_audit_returns_the_events_of_a_run(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    model.enqueue(Text("fine"))
    run = await execute(
        client, "agentls.delegate", {"agent": "review", "uri": uri_of(workspace / "src" / "app.py")}
    )

    events = await execute(client, "agentls.audit", {"runId": run["runId"]})

    assert [e["kind"] for e in events] == ["started", "model_call", "output", "finished"]
    assert {e["runId"] for e in events} == {run["runId"]}
    assert events[-1]["usage"]["total"] == run["usage"]["total"]
    assert events[0]["data"]["path"] == "src/app.py"
    last = await execute(client, "agentls.audit", {"agent": "review", "limit": 1})
    assert [e["kind"] for e in last] == ["finished"]
    assert await execute(client, "agentls.audit", {"agent": "nobody"}) == []


# Bad input: InvalidParams naming the argument, and the server keeps serving.

BAD_ARGUMENTS = [
    pytest.param(
        "agentls.delegate",
        {"uri": "file:///x.py"},
        "argument 'agent' is required",
        id="missing-agent",
    ),
    pytest.param(
        "agentls.delegate", {"agent": "review"}, "argument 'uri' is required", id="missing-uri"
    ),
    pytest.param(
        "agentls.delegate",
        {"agent": "", "uri": "file:///x.py"},
        "argument 'agent'",
        id="empty-agent",
    ),
    pytest.param(
        "agentls.delegate",
        {"agent": "review", "uri": "file:///x.py", "budget": "lots"},
        "argument 'budget'",
        id="budget-not-a-number",
    ),
    pytest.param(
        "agentls.delegate",
        {"agent": "review", "uri": "file:///x.py", "budget": -5},
        "argument 'budget'",
        id="negative-budget",
    ),
    pytest.param(
        "agentls.delegate",
        {"agent": "review", "uri": "file:///x.py", "range": {"start": {"line": 0}}},
        "argument 'range.start.character' is required",
        id="half-a-range",
    ),
    pytest.param(
        "agentls.delegate",
        {"agent": "review", "uri": "file:///x.py", "colour": "red"},
        "argument 'colour' is not an argument of this command",
        id="unknown-argument",
    ),
    pytest.param("agentls.cancel", {"runId": 42}, "argument 'runId'", id="run-id-not-a-string"),
    pytest.param(
        "agentls.budget", {"action": "spend"}, "argument 'action'", id="unknown-budget-action"
    ),
    pytest.param(
        "agentls.budget", {"action": "set", "limit": -1}, "argument 'limit'", id="negative-limit"
    ),
    pytest.param("agentls.audit", {"limit": 0}, "argument 'limit'", id="audit-limit-zero"),
    # Only the argument validation of delegateParallel and createAgent is tested here; their runs
    # are in test_parallel_create.py.
    pytest.param(
        "agentls.delegateParallel", {}, "argument 'tasks' is required", id="parallel-no-tasks"
    ),
    pytest.param(
        "agentls.delegateParallel", {"tasks": []}, "argument 'tasks'", id="parallel-empty-tasks"
    ),
    pytest.param(
        "agentls.delegateParallel",
        {"tasks": [{"agent": "review"}, {"goal": "x"}]},
        "argument 'tasks.1.agent' is required",
        id="parallel-task-without-agent",
    ),
    pytest.param(
        "agentls.delegateParallel",
        {"tasks": [{"agent": "review"}], "maxParallel": 0},
        "argument 'maxParallel'",
        id="parallel-max-zero",
    ),
    pytest.param("agentls.createAgent", {}, "argument 'prompt' is required", id="create-no-prompt"),
    pytest.param(
        "agentls.createAgent",
        {"prompt": "x", "save": "maybe"},
        "argument 'save'",
        id="create-save-not-bool",
    ),
]


@pytest.mark.parametrize(("command", "arguments", "message"), BAD_ARGUMENTS)
async def test_bad_arguments_answer_invalid_params_naming_the_argument(
    client: LanguageClient, command: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(client, command, arguments)

    assert str(raised.value).startswith(f"{command}: ") or command in str(raised.value)
    assert message in str(raised.value)
    await still_serving(client)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(("review",), "expected one object argument, got str", id="a-string"),
        pytest.param(({"agent": "review"}, {}), "expected one object argument, got 2", id="two"),
        pytest.param((), "argument 'agent' is required", id="none"),
    ],
)
async def test_arguments_must_be_one_object(
    client: LanguageClient, arguments: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(JsonRpcInvalidParams, match=message):
        await execute(client, "agentls.delegate", *arguments)

    await still_serving(client)


async def test_unknown_agent_is_an_error_listing_the_known_ones(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(
            client,
            "agentls.delegate",
            {"agent": "revewer", "uri": uri_of(workspace / "src" / "app.py")},
        )

    assert "unknown agent 'revewer'" in str(raised.value)
    assert "review" in str(raised.value)
    assert model.requests == [], "no model call for a request that was refused"
    await still_serving(client)


async def test_a_uri_outside_the_workspace_is_refused(
    client: LanguageClient, workspace: Path, tmp_path: Path, model: ScriptedOpenAI
) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("SECRET = 1\n")

    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(client, "agentls.delegate", {"agent": "review", "uri": uri_of(outside)})

    assert "argument 'uri'" in str(raised.value)
    assert "outside the workspace" in str(raised.value)
    assert model.requests == []
    await still_serving(client)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        pytest.param("https://example.invalid/a.py", "is not a file URI", id="not-a-file-uri"),
        pytest.param("file:///nonexistent/../../etc/passwd", "outside the workspace", id="dot-dot"),
    ],
)
async def test_a_uri_that_is_not_a_workspace_file_is_refused(
    client: LanguageClient, uri: str, message: str
) -> None:
    with pytest.raises(JsonRpcInvalidParams, match=message):
        await execute(client, "agentls.delegate", {"agent": "review", "uri": uri})

    await still_serving(client)


async def test_a_missing_file_is_refused(client: LanguageClient, workspace: Path) -> None:
    with pytest.raises(JsonRpcInvalidParams, match="argument 'uri': no such file"):
        await execute(
            client, "agentls.delegate", {"agent": "review", "uri": uri_of(workspace / "gone.py")}
        )

    await still_serving(client)


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        pytest.param(
            ((40, 0), (50, 0)), "starts at line 40, past the end of app.py", id="past-the-end"
        ),
        pytest.param(((3, 0), (1, 0)), "range end comes before its start", id="backwards"),
    ],
)
async def test_a_range_that_selects_nothing_real_is_refused(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    selection: tuple[tuple[int, int], tuple[int, int]],
    message: str,
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(
            client,
            "agentls.delegate",
            {"agent": "review", "uri": uri, "range": lsp_range(*selection)},
        )

    assert "argument 'range'" in str(raised.value)
    assert message in str(raised.value)
    assert model.requests == []
    await still_serving(client)


async def test_cancel_of_an_unknown_run_names_the_run_id(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcInvalidParams, match="argument 'runId': no run 'nope' in flight"):
        await execute(client, "agentls.cancel", {"runId": "nope"})

    await still_serving(client)


async def test_an_unknown_command_is_an_error_and_the_server_keeps_serving(
    client: LanguageClient, editor: Editor
) -> None:
    with pytest.raises(JsonRpcException):
        await execute(client, "agentls.frobnicate", {})

    await still_serving(client)
