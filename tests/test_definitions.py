"""Agent definitions: the built-ins, where definitions come from, and every way a file can be wrong.

Errors are checked by structure (file, line, column, field), not by their wording.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentls.core.definitions import (
    AgentDefinition,
    DefinitionError,
    Mode,
    UnknownAgentError,
    parse_definition_text,
)
from agentls.core.engine import EngineSettings, load_registry
from agentls.core.registry import AgentRegistry, default_sources

VALID = "name: helper\ndescription: Helps\ninstructions: Be helpful.\n"


@pytest.fixture(autouse=True)
def empty_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's own agent folder must not leak into these tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def registry_of(workspace: Path | None, *extra: Path) -> AgentRegistry:
    return AgentRegistry.load(default_sources(workspace, list(extra)))


def only_error(workspace: Path, name: str, text: str) -> DefinitionError:
    path = write(workspace / ".agentls" / "agents", name, text)
    registry = registry_of(workspace)
    errors = [e for e in registry.errors if e.path == path]
    assert len(errors) == 1, registry.errors
    return errors[0]


# --- built-ins ---------------------------------------------------------------------------------


def test_builtin_agents_load_without_errors() -> None:
    registry = registry_of(None)
    assert registry.errors == []
    assert {"explain", "review", "document", "refactor", "write-tests", "research"} <= set(
        registry.names()
    )
    assert all(agent.source == "builtin" for agent in registry)


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("explain", Mode.ANSWER),
        ("review", Mode.ANSWER),
        ("write-tests", Mode.ANSWER),
        ("document", Mode.EDIT),
        ("refactor", Mode.EDIT),
        ("research", Mode.TOOLS),
    ],
)
def test_builtin_agent_has_its_mode(name: str, mode: Mode) -> None:
    assert registry_of(None).get(name).definition.mode is mode


def test_research_agent_may_use_read_only_tools_only() -> None:
    tools = registry_of(None).get("research").definition.tools
    assert tools and set(tools) <= {"read_file", "list_files", "search"}


def test_unknown_agent_error_lists_the_known_agents() -> None:
    with pytest.raises(UnknownAgentError) as info:
        registry_of(None).get("nobody")
    assert "nobody" in str(info.value)
    assert "review" in str(info.value)


# --- sources and precedence --------------------------------------------------------------------


def test_workspace_definition_overrides_builtin_of_same_name(tmp_path: Path) -> None:
    path = write(
        tmp_path / ".agentls" / "agents",
        "review.yaml",
        "name: review\ndescription: Our own review\ninstructions: Review our way.\n",
    )
    loaded = registry_of(tmp_path).get("review")
    assert loaded.source == "workspace"
    assert loaded.path == path
    assert loaded.definition.description == "Our own review"


def test_user_folder_agents_load(tmp_path: Path, empty_home: Path) -> None:
    write(empty_home / ".config" / "agentls" / "agents", "helper.yaml", VALID)
    loaded = registry_of(tmp_path).get("helper")
    assert loaded.source == "user"


def test_workspace_overrides_user_folder(tmp_path: Path, empty_home: Path) -> None:
    write(empty_home / ".config" / "agentls" / "agents", "helper.yaml", VALID)
    write(
        tmp_path / ".agentls" / "agents",
        "helper.yaml",
        VALID.replace("Helps", "Helps the workspace"),
    )
    loaded = registry_of(tmp_path).get("helper")
    assert loaded.source == "workspace"
    assert loaded.definition.description == "Helps the workspace"


def test_agent_folders_setting_adds_a_folder_relative_to_the_workspace(tmp_path: Path) -> None:
    write(tmp_path / "team-agents", "helper.yaml", VALID)
    registry = load_registry(tmp_path, EngineSettings(agent_folders=[Path("team-agents")]))
    assert registry.get("helper").source == "user"


def test_untrusted_workspace_definitions_are_not_loaded(tmp_path: Path) -> None:
    write(tmp_path / ".agentls" / "agents", "helper.yaml", VALID)
    registry = load_registry(tmp_path, EngineSettings(workspace_trusted=False))
    assert "helper" not in registry
    assert "review" in registry


def test_yml_and_markdown_files_load_from_agent_folders(tmp_path: Path) -> None:
    folder = tmp_path / ".agentls" / "agents"
    write(folder, "one.yml", VALID.replace("helper", "one"))
    write(folder, "two.md", "---\nname: two\ndescription: Two\n---\nThe body is the prompt.\n")
    registry = registry_of(tmp_path)
    assert registry.errors == []
    assert "one" in registry
    assert registry.get("two").definition.instructions == "The body is the prompt."


# --- Claude Code sub-agents --------------------------------------------------------------------

CLAUDE_AGENT = """\
---
name: code-reviewer
description: Reviews code after changes
tools: Read, Grep, Glob, Bash
model: sonnet
color: blue
---
You are a senior reviewer.

Look for bugs first.
"""


def test_claude_code_agent_loads_with_front_matter_and_body(tmp_path: Path) -> None:
    path = write(tmp_path / ".claude" / "agents", "code-reviewer.md", CLAUDE_AGENT)
    registry = registry_of(tmp_path)
    assert registry.errors == []
    loaded = registry.get("code-reviewer")
    assert loaded.source == "claude"
    assert loaded.path == path
    assert loaded.definition.description == "Reviews code after changes"
    assert loaded.definition.instructions == "You are a senior reviewer.\n\nLook for bugs first."


def test_claude_code_tools_map_onto_builtin_tools(tmp_path: Path) -> None:
    write(tmp_path / ".claude" / "agents", "code-reviewer.md", CLAUDE_AGENT)
    definition = registry_of(tmp_path).get("code-reviewer").definition
    assert definition.mode is Mode.TOOLS
    assert set(definition.tools) == {"read_file", "search", "list_files"}


def test_claude_code_agent_without_tools_runs_in_answer_mode(tmp_path: Path) -> None:
    write(
        tmp_path / ".claude" / "agents",
        "plain.md",
        "---\nname: plain\ndescription: Plain\n---\nAnswer questions.\n",
    )
    definition = registry_of(tmp_path).get("plain").definition
    assert definition.mode is Mode.ANSWER
    assert definition.tools == []


def test_claude_code_edit_tools_map_onto_propose_edit(tmp_path: Path) -> None:
    write(
        tmp_path / ".claude" / "agents",
        "fixer.md",
        "---\nname: fixer\ndescription: Fixes\ntools: [Read, Edit, Write]\n---\nFix it.\n",
    )
    definition = registry_of(tmp_path).get("fixer").definition
    assert set(definition.tools) == {"read_file", "propose_edit"}


def test_workspace_agentls_definition_wins_over_claude_definition(tmp_path: Path) -> None:
    write(tmp_path / ".claude" / "agents", "code-reviewer.md", CLAUDE_AGENT)
    write(
        tmp_path / ".agentls" / "agents",
        "code-reviewer.yaml",
        "name: code-reviewer\ndescription: Ours\ninstructions: Ours.\n",
    )
    assert registry_of(tmp_path).get("code-reviewer").source == "workspace"


# --- bad inputs: each error names file, line, column and field ---------------------------------


def test_unknown_field_is_an_error_at_its_line(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", VALID + "temperature: 0.3\n")
    assert error.field == "temperature"
    assert (error.line, error.column) == (4, 1)
    assert "helper" not in registry_of(tmp_path)


def test_name_breaking_the_pattern_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = "description: Helps\ninstructions: Be helpful.\nname: My_Agent\n"
    error = only_error(tmp_path, "a.yaml", text)
    assert error.field == "name"
    assert error.line == 3


def test_unknown_mode_is_an_error_at_its_line(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", VALID + "mode: chat\n")
    assert error.field == "mode"
    assert error.line == 4
    assert "answer" in error.message  # the allowed values are named


def test_unknown_tool_is_an_error_naming_the_tool(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", VALID + "mode: tools\ntools: [read_file, rm_rf]\n")
    assert error.field == "tools.1"
    assert (error.line, error.column) == (5, 20)
    assert "rm_rf" in error.message


def test_unknown_tool_in_a_block_list_points_at_its_entry(tmp_path: Path) -> None:
    text = VALID + "mode: tools\ntools:\n  - read_file\n  - rm_rf\n"
    error = only_error(tmp_path, "a.yaml", text)
    assert error.field == "tools.1"
    assert (error.line, error.column) == (7, 5)


def test_missing_required_field_is_an_error_naming_the_field(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", "name: helper\ndescription: Helps\n")
    assert error.field == "instructions"
    assert error.line >= 1


def test_each_missing_field_is_reported(tmp_path: Path) -> None:
    write(tmp_path / ".agentls" / "agents", "a.yaml", "name: helper\n")
    fields = {e.field for e in registry_of(tmp_path).errors}
    assert fields == {"description", "instructions"}


def test_wrongly_typed_value_is_an_error_at_its_line(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", VALID + "max_turns: many\n")
    assert error.field == "max_turns"
    assert error.line == 4


def test_zero_budget_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", VALID + "budget: 0\n")
    assert error.field == "budget"
    assert error.line == 4


def test_invalid_yaml_syntax_is_an_error_at_the_line_of_the_problem(tmp_path: Path) -> None:
    text = "name: helper\ndescription: Helps\ninstructions: [unclosed\nmode: answer\n  oops: 1\n"
    error = only_error(tmp_path, "a.yaml", text)
    assert error.field is None
    assert error.line >= 3
    assert error.column >= 1


def test_invalid_yaml_indentation_points_at_the_offending_line(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", "name: helper\ndescription: Helps\n  bad: value\n")
    assert error.line == 3
    assert error.column > 1


def test_list_document_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", "- name: helper\n- description: Helps\n")
    assert error.line == 1
    assert error.field is None


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", "")
    assert error.line == 1


def test_plain_string_document_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, "a.yaml", "just some words\n")
    assert error.line == 1


def test_markdown_without_front_matter_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / ".claude" / "agents", "notes.md", "# Notes\n\nNo front-matter.\n")
    errors = [e for e in registry_of(tmp_path).errors if e.path == path]
    assert len(errors) == 1
    assert errors[0].line == 1


def test_front_matter_error_line_counts_from_the_top_of_the_file(tmp_path: Path) -> None:
    text = "---\nname: fixer\ndescription: Fixes\nshade: red\n---\nFix it.\n"
    path = write(tmp_path / ".claude" / "agents", "fixer.md", text)
    (error,) = [e for e in registry_of(tmp_path).errors if e.path == path]
    assert error.field == "shade"
    assert error.line == 4


def test_front_matter_yaml_syntax_error_line_counts_from_the_top_of_the_file(
    tmp_path: Path,
) -> None:
    text = "---\nname: fixer\ndescription: Fixes\n  bad: [\n---\nFix it.\n"
    path = write(tmp_path / ".claude" / "agents", "fixer.md", text)
    (error,) = [e for e in registry_of(tmp_path).errors if e.path == path]
    assert error.line == 4


def test_error_text_names_file_line_column_and_field(tmp_path: Path) -> None:
    error = only_error(tmp_path, "bad.yaml", VALID + "mode: chat\n")
    text = str(error)
    assert text.startswith(f"{error.path}:{error.line}:{error.column}: ")
    assert "mode" in text


def test_not_utf8_file_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / ".agentls" / "agents"
    folder.mkdir(parents=True)
    path = folder / "latin.yaml"
    path.write_bytes(VALID.replace("Helps", "Hilft gr\xfc\xdf").encode("latin-1"))
    errors = [e for e in registry_of(tmp_path).errors if e.path == path]
    assert len(errors) == 1


def test_one_bad_file_never_stops_the_others(tmp_path: Path) -> None:
    folder = tmp_path / ".agentls" / "agents"
    write(folder, "a-bad.yaml", "name: [\n")
    write(folder, "b-good.yaml", VALID)
    write(folder, "c-bad.yaml", VALID.replace("helper", "other") + "colour: red\n")
    registry = registry_of(tmp_path)
    assert "helper" in registry
    assert "review" in registry
    assert {e.path.name for e in registry.errors} == {"a-bad.yaml", "c-bad.yaml"}


def test_bad_override_leaves_the_builtin_in_effect(tmp_path: Path) -> None:
    write(tmp_path / ".agentls" / "agents", "review.yaml", "name: review\nmode: chat\n")
    registry = registry_of(tmp_path)
    assert registry.get("review").source == "builtin"
    assert registry.errors


def test_files_with_other_suffixes_are_ignored(tmp_path: Path) -> None:
    write(tmp_path / ".agentls" / "agents", "README.txt", "not a definition")
    assert registry_of(tmp_path).errors == []


# --- the definition model itself ---------------------------------------------------------------


def test_parse_gives_the_definition_with_defaults() -> None:
    definition, errors = parse_definition_text(VALID, Path("helper.yaml"))
    assert errors == []
    assert definition == AgentDefinition(
        name="helper", description="Helps", instructions="Be helpful."
    )
    assert definition.mode is Mode.ANSWER
    assert definition.max_turns >= 1


def test_generation_schema_requires_the_fields_a_definition_needs() -> None:
    schema = AgentDefinition.json_schema_for_generation()
    assert {"name", "description", "instructions", "mode"} <= set(schema["required"])
    assert set(schema["properties"]) <= set(AgentDefinition.model_fields)
