"""create_agent against the scripted model server (create, repair, failure, save, restriction,
names) and once against the real embedded model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.core.create import (
    CREATOR,
    CreateAgentError,
    create_agent,
    restrict,
    save_definition,
    validation_problems,
)
from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.engine import EngineSettings, build_runtime, load_registry
from agentls.core.events import RunStatus
from agentls.core.registry import AgentRegistry, default_sources
from agentls.core.runtime import AgentRuntime
from agentls.core.target import Target, TextRange

APP = "def run(query, db):\n    return db.execute('SELECT * FROM t WHERE x = ' + query)\n"

SQL_REVIEWER: dict[str, Any] = {
    "name": "sql-reviewer",
    "description": "Reviews code for SQL injection",
    "instructions": "You review code for SQL injection. Name each unsafe query and its fix.",
    "mode": "answer",
    "tools": [],
    "max_turns": 1,
}


def answer(definition: dict[str, Any], **changes: Any) -> Text:
    return Text(json.dumps({**definition, **changes}))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "db.py").write_text(APP)
    return root.resolve()


@pytest.fixture
async def runtime(workspace: Path, server: ScriptedOpenAI) -> AsyncIterator[AgentRuntime]:
    rt = build_runtime(
        workspace, EngineSettings(model="scripted-model", base_url=server.url, api_key="sk-test")
    )
    yield rt
    await rt.aclose()


def user_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


# Create


async def test_create_from_a_sentence_registers_a_runnable_agent(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(answer(SQL_REVIEWER), Text("line 2 concatenates the query: use parameters"))
    before = set(runtime.registry.names())

    created = await create_agent(runtime, "a reviewer for SQL injection")

    d = created.definition
    assert d.name == "sql-reviewer"
    assert d.mode is Mode.ANSWER
    assert d.instructions == SQL_REVIEWER["instructions"]
    assert created.saved_to is None
    assert created.creation.status is RunStatus.FINISHED
    assert created.creation.agent == CREATOR.name
    assert created.creation.usage.total > 0
    loaded = runtime.registry.get("sql-reviewer")
    assert (loaded.source, loaded.path, loaded.definition) == ("generated", None, d)
    assert set(runtime.registry.names()) == before | {"sql-reviewer"}
    assert not (workspace / ".agentls" / "agents").exists()
    # One request, carrying the sentence.
    assert len(server.requests) == 1
    assert "a reviewer for SQL injection" in user_messages(server.requests[0])[0]

    # Runnable at once, by name, with its own instructions as the system prompt.
    target = Target(path=workspace / "src" / "db.py")
    result = await runtime.delegate("sql-reviewer", "review this", target)
    assert result.status is RunStatus.FINISHED
    assert result.agent == "sql-reviewer"
    assert result.text.startswith("line 2 concatenates")
    run_request = server.requests[1]
    assert run_request["messages"][0] == {"role": "system", "content": d.instructions}
    assert "response_format" not in run_request


async def test_request_asks_for_json_schema_structured_output(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.enqueue(answer(SQL_REVIEWER))
    await create_agent(runtime, "a reviewer for SQL injection")
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert schema == AgentDefinition.json_schema_for_generation()
    assert set(schema["required"]) >= {"name", "description", "instructions", "mode"}
    assert schema["properties"]["tools"]["items"]["enum"]  # only built-in tools can be named


async def test_selection_goes_into_the_creation_request(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    server.enqueue(answer(SQL_REVIEWER))
    selection = Target(path=workspace / "src" / "db.py", range=TextRange.whole_lines(2, 2, APP))
    await create_agent(runtime, "an agent for code like this", selection=selection)
    prompt = user_messages(server.requests[0])[0]
    assert "db.execute('SELECT * FROM t WHERE x = ' + query)" in prompt
    assert "def run(query, db)" not in prompt  # only the selected line


async def test_fenced_json_answer_is_accepted(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.enqueue(Text("```json\n" + json.dumps(SQL_REVIEWER, indent=2) + "\n```"))
    created = await create_agent(runtime, "a reviewer for SQL injection")
    assert created.definition.name == "sql-reviewer"
    assert len(server.requests) == 1


# Repair


async def test_invalid_answer_gets_exactly_one_repair_round(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    bad = {k: v for k, v in SQL_REVIEWER.items() if k != "instructions"}
    bad["name"] = "SQL Reviewer!"
    server.enqueue(Text(json.dumps(bad)), answer(SQL_REVIEWER))

    created = await create_agent(runtime, "a reviewer for SQL injection")

    assert created.definition.name == "sql-reviewer"
    assert runtime.registry.get("sql-reviewer").source == "generated"
    assert len(server.requests) == 2
    repair = server.requests[1]
    # The repair round sees its own bad answer, then the validation errors, field by field.
    assert repair["messages"][-2] == {"role": "assistant", "content": json.dumps(bad)}
    prompt = repair["messages"][-1]
    assert prompt["role"] == "user"
    assert "failed validation" in prompt["content"]
    for problem in validation_problems(json.dumps(bad)):
        assert problem in prompt["content"]
    assert "field name:" in prompt["content"]
    assert "field instructions: Field required" in prompt["content"]
    assert repair["response_format"]["type"] == "json_schema"
    # Both calls belong to the one creation run and are counted in it.
    first, second = (r["messages"][:2] for r in server.requests)
    assert first == second
    assert created.creation.usage.total > 0


async def test_non_json_answer_is_repaired_too(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.enqueue(Text("Sure! Here is your agent."), answer(SQL_REVIEWER))
    created = await create_agent(runtime, "a reviewer for SQL injection")
    assert created.definition.name == "sql-reviewer"
    assert "not valid JSON" in server.requests[1]["messages"][-1]["content"]


async def test_invalid_twice_fails_clearly_and_registers_nothing(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    before = runtime.registry.names()
    server.enqueue(
        answer(SQL_REVIEWER, mode="chat"),
        answer(SQL_REVIEWER, mode="chat", tools=["rm_rf"]),
        Text("never asked for"),
    )
    with pytest.raises(CreateAgentError) as caught:
        await create_agent(runtime, "a reviewer for SQL injection", save=True)

    message = str(caught.value)
    assert "still invalid" in message
    assert "field mode" in message
    assert "field tools" in message and "rm_rf" in message
    assert caught.value.creation.status is RunStatus.FAILED
    assert caught.value.creation.agent == CREATOR.name
    assert len(server.requests) == 2  # one try and exactly one repair
    assert server.pending == 1
    assert runtime.registry.names() == before
    assert not (workspace / ".agentls" / "agents").exists()


# Save


async def test_save_writes_yaml_that_loads_back_through_the_registry(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    tools_agent = {
        **SQL_REVIEWER,
        "name": "query-finder",
        "mode": "tools",
        "tools": ["search", "read_file"],
        "max_turns": 4,
    }
    server.enqueue(answer(tools_agent))
    created = await create_agent(runtime, "find every SQL query", save=True)

    path = workspace / ".agentls" / "agents" / "query-finder.yaml"
    assert created.saved_to == path
    assert path.is_file()
    raw = yaml.safe_load(path.read_text())
    assert raw["name"] == "query-finder"
    assert raw["mode"] == "tools"
    loaded = runtime.registry.get("query-finder")
    assert (loaded.source, loaded.path) == ("workspace", path)

    # A fresh registry (what the next session loads) finds it with the same definition.
    fresh = AgentRegistry.load(default_sources(workspace))
    assert fresh.errors == []
    again = fresh.get("query-finder")
    assert again.source == "workspace"
    assert again.definition == created.definition
    assert load_registry(workspace, EngineSettings()).get("query-finder").definition == (
        created.definition
    )


async def test_save_never_overwrites_a_saved_agent_of_the_same_name(
    workspace: Path, server: ScriptedOpenAI
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    existing = folder / "sql-reviewer.yaml"
    original = yaml.safe_dump({**SQL_REVIEWER, "description": "the user's own"})
    existing.write_text(original)
    rt = build_runtime(
        workspace, EngineSettings(model="scripted-model", base_url=server.url, api_key="sk-test")
    )
    try:
        server.enqueue(answer(SQL_REVIEWER))
        created = await create_agent(rt, "a reviewer for SQL injection", save=True)
    finally:
        await rt.aclose()
    assert created.definition.name == "sql-reviewer-2"
    assert created.saved_to == folder / "sql-reviewer-2.yaml"
    assert existing.read_text() == original
    assert rt.registry.get("sql-reviewer").definition.description == "the user's own"


async def test_save_refuses_a_file_it_did_not_know_about(
    runtime: AgentRuntime, server: ScriptedOpenAI, workspace: Path
) -> None:
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True)
    stray = folder / "sql-reviewer.yaml"
    stray.write_text("not: [a definition\n")  # broken, so the registry never loaded it
    server.enqueue(answer(SQL_REVIEWER))
    with pytest.raises(FileExistsError):
        await create_agent(runtime, "a reviewer for SQL injection", save=True)
    assert stray.read_text() == "not: [a definition\n"
    assert "sql-reviewer" not in runtime.registry


def test_save_definition_refuses_to_overwrite(tmp_path: Path) -> None:
    d = AgentDefinition.model_validate(SQL_REVIEWER)
    path = save_definition(tmp_path, d)
    before = path.read_text()
    with pytest.raises(FileExistsError):
        save_definition(tmp_path, d.model_copy(update={"description": "other"}))
    assert path.read_text() == before


# Restriction and names


async def test_generated_agents_lose_edit_tools_unless_allowed(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    editor = {
        **SQL_REVIEWER,
        "name": "fixer",
        "mode": "tools",
        "tools": ["read_file", "propose_edit", "search"],
        "max_turns": 4,
    }
    server.enqueue(answer(editor))
    restricted = await create_agent(runtime, "fix SQL injection")
    assert restricted.definition.tools == ["read_file", "search"]
    assert restricted.definition.mode is Mode.TOOLS

    server.enqueue(answer(editor, name="trusted-fixer"))
    allowed = await create_agent(runtime, "fix SQL injection", allow_edit_tools=True)
    assert allowed.definition.tools == ["read_file", "propose_edit", "search"]


async def test_a_generated_agent_with_only_edit_tools_falls_back_to_answer_mode(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    server.enqueue(
        answer(SQL_REVIEWER, name="writer", mode="tools", tools=["propose_edit"], max_turns=3)
    )
    created = await create_agent(runtime, "rewrite files")
    assert (created.definition.mode, created.definition.tools) == (Mode.ANSWER, [])


async def test_a_generated_agent_gets_no_mcp_tools_unless_allowed(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    # The schema has no `mcp` field, but a backend that does not enforce it may still send one.
    server.enqueue(answer(SQL_REVIEWER, mcp={"filesystem": ["write_file"]}))
    created = await create_agent(runtime, "a reviewer")
    assert created.definition.mcp == {}

    server.enqueue(answer(SQL_REVIEWER, name="mcp-user", mcp={"filesystem": ["read_text_file"]}))
    allowed = await create_agent(runtime, "a reviewer", allow_edit_tools=True)
    assert allowed.definition.mcp == {"filesystem": ["read_text_file"]}


async def test_a_name_taken_by_a_builtin_gets_a_suffix(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    builtin = runtime.registry.get("review")
    assert builtin.source == "builtin"
    server.enqueue(answer(SQL_REVIEWER, name="review"), answer(SQL_REVIEWER, name="review"))

    first = await create_agent(runtime, "a reviewer")
    second = await create_agent(runtime, "another reviewer")

    assert first.definition.name == "review-2"
    assert second.definition.name == "review-3"
    assert runtime.registry.get("review") == builtin  # not shadowed
    assert runtime.registry.get("review-2").source == "generated"
    assert runtime.registry.get("review-3").source == "generated"


async def test_a_suffixed_long_name_stays_a_valid_name(
    runtime: AgentRuntime, server: ScriptedOpenAI
) -> None:
    long_name = "a" * 64
    server.enqueue(answer(SQL_REVIEWER, name=long_name), answer(SQL_REVIEWER, name=long_name))
    first = await create_agent(runtime, "one")
    second = await create_agent(runtime, "two")
    assert first.definition.name == long_name
    assert second.definition.name != long_name
    # What was registered is still a definition the schema accepts (so it can be saved and loaded).
    AgentDefinition.model_validate(second.definition.model_dump())


def test_restrict_keeps_read_only_tools_and_picks_a_free_name() -> None:
    d = AgentDefinition.model_validate(
        {**SQL_REVIEWER, "mode": "tools", "tools": ["propose_edit", "list_files"]}
    )
    out = restrict(d, allow_edit_tools=False, taken={"sql-reviewer", "sql-reviewer-2"})
    assert (out.name, out.tools, out.mode) == ("sql-reviewer-3", ["list_files"], Mode.TOOLS)
    assert restrict(d, allow_edit_tools=True, taken=set()) == d


def test_validation_problems_name_each_field() -> None:
    assert validation_problems(json.dumps(SQL_REVIEWER)) == []
    problems = validation_problems(json.dumps({"name": "Bad", "mode": "x", "extra": 1}))
    fields = {p.split(":", 1)[0] for p in problems}
    assert {"field name", "field mode", "field extra", "field description"} <= fields
    assert validation_problems("no json here")[0].startswith("not valid JSON")
    assert validation_problems("[1, 2]")[0].startswith("not valid JSON")


# The real embedded model


@pytest.mark.model
async def test_create_agent_with_the_embedded_model(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentls.core.llm_local import EmbeddedChatModel, embedded_available

    if (problem := embedded_available()) is not None:
        pytest.skip(f"the embedded model is not installed: {problem}")
    rt = build_runtime(workspace, EngineSettings(model="embedded", max_output_tokens=512))
    model = rt.model_factory(None)
    assert isinstance(model, EmbeddedChatModel)
    calls: list[dict[str, Any]] = []
    original = model._llama.create_chat_completion

    def recording(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(model._llama, "create_chat_completion", recording)
    before = set(rt.registry.names())

    try:
        created = await create_agent(rt, "an agent that reviews Python code for SQL injection")
    except CreateAgentError as exc:
        # A 135M model may miss the schema twice: then the failure must name what was wrong.
        assert len(calls) == 2
        assert exc.creation.status is RunStatus.FAILED
        assert "still invalid" in str(exc)
        assert "field " in str(exc) or "not valid JSON" in str(exc)
        assert "failed validation" in calls[1]["messages"][-1]["content"]
        assert set(rt.registry.names()) == before
    else:
        d = created.definition
        assert isinstance(d, AgentDefinition)
        AgentDefinition.model_validate(d.model_dump())  # what got registered validates
        assert set(d.tools) <= {"read_file", "list_files", "search"}
        assert rt.registry.get(d.name).source == "generated"
        assert d.name not in before
        assert created.creation.status is RunStatus.FINISHED
        assert created.creation.usage.total > 0
        assert not created.creation.usage.estimated  # the embedded model counts exactly
        assert len(calls) in (1, 2)
    # Every call was decoded under the definition schema (llama.cpp's json_object + schema form).
    for kwargs in calls:
        assert kwargs["response_format"] == {
            "type": "json_object",
            "schema": AgentDefinition.json_schema_for_generation(),
        }
