"""agentls.delegateParallel and agentls.createAgent end to end: `agentls serve` over stdio with a
pytest-lsp client, the model played by the scripted server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pytest_lsp import LanguageClient
from tests.lsp.conftest import Editor, execute, lsp_range, open_file, uri_of
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import Hang, Reply, ScriptedOpenAI, Text

GOAL = re.compile(r"Goal: (.*)")
GROUP_PROGRESS = re.compile(r"^(\d+)/(\d+) done · ([\d,]+) tokens$")


def goal_of(body: dict[str, Any]) -> str:
    for message in body["messages"]:
        if message.get("role") == "user":
            match = GOAL.search(message.get("content") or "")
            if match:
                return match.group(1)
    return ""


def group_token(client: LanguageClient) -> str | None:
    tokens = [t for t in client.progress_reports if str(t).startswith("agentls-group-")]
    assert len(tokens) <= 1
    return str(tokens[0]) if tokens else None


def run_tokens(client: LanguageClient) -> dict[str, list[Any]]:
    """Each run's own progress, by the title of its begin report."""
    out = {}
    for token, values in client.progress_reports.items():
        if str(token).startswith("agentls-group-"):
            continue
        begin = values[0]
        assert isinstance(begin, types.WorkDoneProgressBegin)
        out[begin.title] = values
    return out


def usage_total(usage: dict[str, Any]) -> int:
    return int(usage["inputTokens"]) + int(usage["outputTokens"])


# agentls.delegateParallel


async def test_delegate_parallel_returns_results_in_task_order_with_per_agent_usage(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    def reply(body: dict[str, Any]) -> Reply:
        goal = goal_of(body)
        # The first task finishes last, so the order of results is the order of tasks.
        return Hang(0.4, Text(f"slow: {goal}")) if goal == "first" else Text(f"answer: {goal} " * 5)

    model.responder = reply
    tasks = [
        {"agent": "review", "goal": "first", "uri": uri, "range": lsp_range((0, 0), (5, 0))},
        {"agent": "explain", "goal": "second", "uri": uri},
        {"agent": "review", "goal": "third", "uri": uri, "range": lsp_range((7, 0), (9, 0))},
        {"agent": "explain", "goal": "fourth"},
    ]

    result = await execute(client, "agentls.delegateParallel", {"tasks": tasks, "maxParallel": 3})

    results = result["results"]
    assert [r["agent"] for r in results] == ["review", "explain", "review", "explain"]
    assert [r["status"] for r in results] == ["finished"] * 4
    assert results[0]["text"] == "slow: first"
    assert results[1]["text"].startswith("answer: second")
    assert len({r["runId"] for r in results}) == 4
    # Per-agent usage is the sum of that agent's runs; the total is the sum of all.
    per_agent = result["perAgent"]
    assert set(per_agent) == {"review", "explain"}
    for agent, usage in per_agent.items():
        assert usage["total"] == sum(r["usage"]["total"] for r in results if r["agent"] == agent)
        assert usage["total"] == usage_total(usage) > 0
    assert result["usage"]["total"] == sum(u["total"] for u in per_agent.values())
    assert result["wallMs"] >= 400
    assert result["groupId"]
    # The selection reached each run: the third task saw mean(), not total().
    third = next(b for b in model.requests if goal_of(b) == "third")
    assert "def mean" in third["messages"][1]["content"]
    assert "def total" not in third["messages"][1]["content"]
    # The ledger agrees.
    budget = await execute(client, "agentls.budget")
    assert budget["used"] == result["usage"]["total"]
    assert budget["agents"]["review"]["used"] == per_agent["review"]["total"]
    # Every run has its audit trail, closed.
    for r in results:
        audit = await execute(client, "agentls.audit", {"runId": r["runId"]})
        assert audit[0]["kind"] == "started" and audit[-1]["kind"] == "finished"


async def test_delegate_parallel_parent_progress_counts_runs_done_and_tokens(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    model.latency = 0.05
    tasks = [{"agent": "explain", "goal": f"g{i}"} for i in range(5)]

    result = await execute(client, "agentls.delegateParallel", {"tasks": tasks, "maxParallel": 2})

    token = group_token(client)
    assert token is not None, "no parent progress"
    begin, *reports, end = client.progress_reports[token]
    assert isinstance(begin, types.WorkDoneProgressBegin)
    assert begin.title == "agentls: 5 agents in parallel"
    assert begin.cancellable is True
    assert reports and all(isinstance(r, types.WorkDoneProgressReport) for r in reports)
    parsed = []
    for r in reports:
        match = GROUP_PROGRESS.match(r.message or "")
        assert match, f"unexpected report {r.message!r}"
        parsed.append((int(match[1]), int(match[2]), int(match[3].replace(",", ""))))
    assert all(total == 5 for _, total, _ in parsed)
    dones = [d for d, _, _ in parsed]
    assert dones == sorted(dones)
    assert {1, 2, 3, 4, 5} <= set(dones)
    assert [r.percentage for r in reports if r.message and r.message.startswith("5/5")][-1] == 100
    tokens = [t for _, _, t in parsed]
    assert tokens == sorted(tokens)
    assert tokens[-1] == result["usage"]["total"]
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert end.message == "5 finished"
    # Beside it, each run has its own progress.
    own = run_tokens(client)
    assert sorted(own) == sorted(f"explain: g{i}" for i in range(5))
    for values in own.values():
        assert isinstance(values[-1], types.WorkDoneProgressEnd)
        assert (values[-1].message or "").startswith("finished · ")


async def test_cancelling_the_parent_progress_cancels_the_group(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    model.responder = lambda body: Hang(30, Text("too late"))
    tasks = [{"agent": "explain", "goal": f"hang {i}"} for i in range(5)]
    command = asyncio.ensure_future(
        execute(client, "agentls.delegateParallel", {"tasks": tasks, "maxParallel": 2})
    )
    await aeventually(lambda: len(model.requests) == 2 and group_token(client))
    token = group_token(client)

    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(command, 5)

    assert [r["status"] for r in result["results"]] == ["cancelled"] * 5
    assert model.requests and len(model.requests) == 2  # the queued three never called the model
    end = client.progress_reports[token][-1]
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert end.message == "5 cancelled"
    # Every run's own progress ended too, the queued ones included.
    own = run_tokens(client)
    assert len(own) == 5
    for values in own.values():
        assert isinstance(values[-1], types.WorkDoneProgressEnd)
        assert (values[-1].message or "").startswith("cancelled")
    assert (await execute(client, "agentls.cancel"))["cancelled"] == []
    budget = await execute(client, "agentls.budget")
    assert budget["reserved"] == 0
    # The editor saw each run end.
    await editor.wait_until(lambda: sum(1 for e in editor.events if e["kind"] == "cancelled") == 5)


async def test_cancelling_one_runs_progress_cancels_only_that_run(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    def reply(body: dict[str, Any]) -> Reply:
        goal = goal_of(body)
        return Hang(30, Text("too late")) if goal == "victim" else Hang(0.5, Text(f"ok {goal}"))

    model.responder = reply
    tasks = [{"agent": "explain", "goal": g} for g in ("a", "victim", "b")]
    command = asyncio.ensure_future(execute(client, "agentls.delegateParallel", {"tasks": tasks}))
    await aeventually(lambda: len(model.requests) == 3 and "explain: victim" in run_tokens(client))
    victim = next(t for t, v in client.progress_reports.items() if v[0].title == "explain: victim")

    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=victim))
    result = await asyncio.wait_for(command, 5)

    assert [r["status"] for r in result["results"]] == ["finished", "cancelled", "finished"]
    assert [result["results"][0]["text"], result["results"][2]["text"]] == ["ok a", "ok b"]
    end = client.progress_reports[group_token(client)][-1]
    assert end.message == "2 finished, 1 cancelled"


async def test_delegate_parallel_refuses_a_bad_task_before_running_any(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, tmp_path: Path
) -> None:
    uri = uri_of(workspace / "src" / "app.py")
    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(
            client,
            "agentls.delegateParallel",
            {"tasks": [{"agent": "review", "uri": uri}, {"agent": "nope", "uri": uri}]},
        )
    assert "agentls.delegateParallel tasks[1]: unknown agent 'nope'" in str(raised.value)

    outside = tmp_path / "outside.py"
    outside.write_text("x = 1\n")
    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(
            client,
            "agentls.delegateParallel",
            {
                "tasks": [
                    {"agent": "review", "uri": uri},
                    {"agent": "review", "uri": uri_of(outside)},
                ]
            },
        )
    assert "tasks[1]: argument 'uri'" in str(raised.value)
    assert "outside the workspace" in str(raised.value)

    with pytest.raises(JsonRpcInvalidParams, match=r"argument 'tasks\.0\.budget'"):
        await execute(
            client, "agentls.delegateParallel", {"tasks": [{"agent": "review", "budget": 0}]}
        )
    assert model.requests == []
    assert client.progress_reports == {}


# agentls.createAgent

SQL_REVIEWER = {
    "name": "sql-reviewer",
    "description": "Reviews code for SQL injection",
    "instructions": "You review code for SQL injection. Name each unsafe query and its fix.",
    "mode": "answer",
    "tools": [],
    "max_turns": 1,
}


async def test_create_agent_returns_the_definition_and_the_run_result(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")
    model.enqueue(Text(json.dumps(SQL_REVIEWER)), Text("No SQL here; total() is fine."))

    result = await execute(
        client,
        "agentls.createAgent",
        {"prompt": "a reviewer for SQL injection", "uri": uri, "range": lsp_range((0, 0), (5, 0))},
    )

    definition = result["definition"]
    assert definition["name"] == "sql-reviewer"
    assert definition["instructions"] == SQL_REVIEWER["instructions"]
    assert result["savedTo"] is None
    assert result["creation"]["status"] == "finished"
    assert result["creation"]["agent"] == "agent-creator"
    run = result["result"]
    assert (run["agent"], run["status"]) == ("sql-reviewer", "finished")
    assert run["text"] == "No SQL here; total() is fine."
    assert run["usage"]["total"] > 0
    creation_request, run_request = model.requests
    assert creation_request["response_format"]["type"] == "json_schema"
    assert "a reviewer for SQL injection" in creation_request["messages"][1]["content"]
    assert run_request["messages"][0]["content"] == SQL_REVIEWER["instructions"]
    assert "def total" in run_request["messages"][1]["content"]
    assert "def mean" not in run_request["messages"][1]["content"]
    # Registered in memory, and listed as generated.
    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}
    assert agents["sql-reviewer"]["source"] == "generated"
    assert not (workspace / ".agentls" / "agents").exists()


async def test_create_agent_save_writes_the_file(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    tools_agent = {**SQL_REVIEWER, "mode": "tools", "tools": ["search", "propose_edit"]}
    model.enqueue(Text(json.dumps(tools_agent)))

    result = await execute(
        client,
        "agentls.createAgent",
        {"prompt": "a reviewer for SQL injection", "save": True, "run": False},
    )

    path = workspace / ".agentls" / "agents" / "sql-reviewer.yaml"
    assert result["savedTo"] == str(path)
    assert result["result"] is None
    assert len(model.requests) == 1
    saved = yaml.safe_load(path.read_text())
    assert saved["name"] == "sql-reviewer"
    assert saved["tools"] == ["search"]  # generated agents get read-only tools by default
    assert result["definition"]["tools"] == ["search"]
    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}
    assert agents["sql-reviewer"]["source"] == "workspace"
    assert agents["sql-reviewer"]["path"] == str(path)

    # Saved again under the same name: a new name, the first file untouched.
    before = path.read_text()
    model.enqueue(Text(json.dumps(tools_agent)))
    again = await execute(
        client, "agentls.createAgent", {"prompt": "again", "save": True, "run": False}
    )
    assert again["definition"]["name"] == "sql-reviewer-2"
    assert path.read_text() == before


@pytest.mark.parametrize("editor_settings", [{"allowGeneratedEditTools": True}])
async def test_settings_can_allow_generated_agents_edit_tools(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    editor_settings: dict[str, Any],
) -> None:
    await editor.wait_until(lambda: editor.configuration_requests)
    tools_agent = {**SQL_REVIEWER, "mode": "tools", "tools": ["search", "propose_edit"]}
    model.enqueue(Text(json.dumps(tools_agent)))
    result = await execute(client, "agentls.createAgent", {"prompt": "fixer", "run": False})
    assert result["definition"]["tools"] == ["search", "propose_edit"]


async def test_create_agent_invalid_twice_is_an_error_naming_the_problems(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    before = [a["name"] for a in await execute(client, "agentls.listAgents")]
    model.enqueue(Text('{"name": "Bad Name"}'), Text('{"name": "Still Bad"}'))
    with pytest.raises(JsonRpcException) as raised:
        await execute(client, "agentls.createAgent", {"prompt": "anything", "save": True})
    message = str(raised.value)
    assert "agentls.createAgent" in message
    assert "still invalid" in message and "field name" in message
    assert not isinstance(raised.value, JsonRpcInvalidParams)
    assert len(model.requests) == 2
    assert "failed validation" in model.requests[1]["messages"][-1]["content"]
    agents = [a["name"] for a in await execute(client, "agentls.listAgents")]
    assert agents == before  # nothing was added, not even in memory
    assert not (workspace / ".agentls" / "agents").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({}, "argument 'prompt' is required", id="no-prompt"),
        pytest.param({"prompt": ""}, "argument 'prompt'", id="empty-prompt"),
        pytest.param(
            {"prompt": "x", "range": lsp_range((0, 0), (1, 0))},
            "argument 'range' needs 'uri'",
            id="range-without-uri",
        ),
        pytest.param({"prompt": "x", "budget": 0}, "argument 'budget'", id="zero-budget"),
        pytest.param({"prompt": "x", "run": "yes please"}, "argument 'run'", id="run-not-bool"),
        pytest.param(
            {"prompt": "x", "uri": "file:///etc/passwd"},
            "argument 'uri'",
            id="uri-outside-workspace",
        ),
    ],
)
async def test_create_agent_bad_arguments_are_invalid_params(
    client: LanguageClient,
    model: ScriptedOpenAI,
    arguments: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(client, "agentls.createAgent", arguments)
    assert str(raised.value).startswith("agentls.createAgent: ")
    assert message in str(raised.value)
    assert model.requests == []


async def test_create_agent_save_over_an_unknown_file_is_invalid_params(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "sql-reviewer.yaml").write_text("broken: [\n")
    model.enqueue(Text(json.dumps(SQL_REVIEWER)))
    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(client, "agentls.createAgent", {"prompt": "x", "save": True})
    assert "argument 'save'" in str(raised.value)
    assert "already exists" in str(raised.value)
    assert (folder / "sql-reviewer.yaml").read_text() == "broken: [\n"


async def test_an_unsaved_created_agent_survives_a_registry_reload(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI
) -> None:
    model.enqueue(Text(json.dumps(SQL_REVIEWER)))
    await execute(client, "agentls.createAgent", {"prompt": "a SQL reviewer", "run": False})
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    other = folder / "checker.yaml"
    other.write_text("name: checker\ndescription: Checks\ninstructions: Check.\n")
    uri = open_file(client, other, language="yaml")

    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )

    agents = {a["name"]: a for a in await execute(client, "agentls.listAgents")}
    assert agents["checker"]["source"] == "workspace"
    assert agents["sql-reviewer"]["source"] == "generated"
