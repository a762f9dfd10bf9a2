"""How `agentls acp` reads a prompt: slash commands, attached selections, and what it leaves
unimported until the command runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentls.acp.anchors import locate
from agentls.acp.commands import (
    Budget,
    CommandError,
    Create,
    Delegate,
    Parallel,
    available_commands,
    default_agent,
    parse_command,
)
from agentls.acp.named_targets import named_file
from agentls.acp.resources import ResourceError, path_of, selection_range
from agentls.core.definitions import AgentDefinition, LoadedAgent
from agentls.core.registry import AgentRegistry, default_sources
from agentls.core.target import ProposedEdit, TextRange, slice_range

TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture
def registry() -> AgentRegistry:
    return AgentRegistry.load(default_sources(None, []))


def test_plain_prompt_goes_to_the_default_agent(registry: AgentRegistry) -> None:
    assert parse_command("what does it do?", registry, "explain") == Delegate(
        "explain", "what does it do?"
    )


def agent_named(name: str) -> LoadedAgent:
    definition = AgentDefinition(name=name, description=f"{name} agent", instructions="Work.")
    return LoadedAgent(definition, "builtin")


def test_default_agent_is_the_orchestrator_when_defined_else_explain() -> None:
    registry = AgentRegistry()
    registry.add(agent_named("explain"))
    assert default_agent(registry, None) == "explain"
    registry.add(agent_named("orchestrator"))
    assert default_agent(registry, None) == "orchestrator"


def test_default_agent_setting_wins(registry: AgentRegistry) -> None:
    assert default_agent(registry, "review") == "review"


def test_agent_command_takes_the_rest_as_goal(registry: AgentRegistry) -> None:
    assert parse_command("/review  look for leaks ", registry, "explain") == Delegate(
        "review", "look for leaks"
    )


def test_parallel_takes_comma_separated_agents_and_a_goal(registry: AgentRegistry) -> None:
    assert parse_command("/parallel review,explain check it", registry, "explain") == Parallel(
        ["review", "explain"], "check it"
    )


def test_parallel_with_an_unknown_agent_names_it(registry: AgentRegistry) -> None:
    with pytest.raises(CommandError, match="unknown agent 'nope'"):
        parse_command("/parallel review,nope go", registry, "explain")


def test_create_needs_a_sentence(registry: AgentRegistry) -> None:
    assert parse_command("/create a linter", registry, "explain") == Create("a linter")
    with pytest.raises(CommandError, match="/create needs a sentence"):
        parse_command("/create", registry, "explain")


def test_budget_command_keeps_its_words(registry: AgentRegistry) -> None:
    assert parse_command("/budget set 20k", registry, "explain") == Budget(["set", "20k"])


def test_unknown_command_lists_the_commands(registry: AgentRegistry) -> None:
    with pytest.raises(CommandError, match=r"Unknown command /nosuch\. The commands are .*/review"):
        parse_command("/nosuch x", registry, "explain")


def test_a_missing_default_agent_says_how_to_choose(registry: AgentRegistry) -> None:
    with pytest.raises(CommandError, match="--default-agent"):
        parse_command("hello", registry, "no-such-agent")


def test_commands_offer_every_agent_and_the_builtins(registry: AgentRegistry) -> None:
    names = [c["name"] for c in available_commands(registry)]
    assert set(registry.names()) | {"parallel", "create", "budget"} == set(names)


def test_selection_with_zed_line_fragment_maps_to_those_lines() -> None:
    rng = selection_range(TEXT, "def sub(a, b):\n    return a - b\n", "L5:6")
    assert rng == TextRange.of(4, 0, 6, 0)


def test_selection_without_line_info_maps_by_its_unique_text() -> None:
    rng = selection_range(TEXT, "return a - b", "")
    assert rng is not None and slice_range(TEXT, rng) == "return a - b"
    assert rng.start.line == 5


def test_selection_whose_fragment_disagrees_falls_back_to_its_text() -> None:
    rng = selection_range(TEXT, "return a + b", "L5-6")
    assert rng is not None and rng.start.line == 1


def test_ambiguous_selection_is_not_mapped() -> None:
    assert selection_range(TEXT, "def ", "") is None


def test_non_file_uri_is_refused_with_what_to_attach() -> None:
    with pytest.raises(ResourceError, match="is not a file"):
        path_of("https://example.com/a.py")
    assert path_of("file:///w/a%20b.py#L2") == (Path("/w/a b.py"), "L2")


def test_cli_and_language_server_do_not_import_the_acp_sdk() -> None:
    code = (
        "import sys, agentls.cli, agentls.lsp.app; agentls.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'acp' or m.startswith('acp.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def edit_of(rng: TextRange) -> ProposedEdit:
    return ProposedEdit(path="a.py", range=rng, new_text="X", agent="fixer")


def test_edit_follows_its_text_when_lines_were_added_above() -> None:
    seen = TEXT
    rng = TextRange.of(5, 4, 5, 16)  # "return a - b" in what the agent saw
    replaced = slice_range(seen, rng)
    current = "# a new first line\n" + TEXT
    placed = locate(current, replaced, edit_of(rng))
    assert placed is not None and placed.start.line == 6
    assert slice_range(current, placed) == "return a - b"


def test_edit_whose_text_is_gone_or_ambiguous_is_not_placed() -> None:
    rng = TextRange.of(0, 0, 0, 4)  # "def " occurs twice
    assert locate("x" + TEXT, "def ", edit_of(rng)) is None
    assert locate("nothing alike", "return a - b", edit_of(rng)) is None


def test_budget_option_rejects_what_is_not_a_limit(capsys: pytest.CaptureFixture[str]) -> None:
    from agentls.cli import main

    assert main(["acp", "--budget", "lots"]) == 2
    assert "--budget: expected a number of tokens" in capsys.readouterr().err
    assert main(["acp", "--budget", "none"]) == 2
    assert "agentls budget set none" in capsys.readouterr().err


def test_panel_mcp_servers_join_the_engine_settings() -> None:
    from acp.schema import EnvVariable, HttpMcpServer, McpServerStdio

    from agentls.acp.agent import panel_mcp

    servers = [
        McpServerStdio(
            name="fs",
            command="npx",
            args=["-y", "@modelcontextprotocol/server-filesystem", "/w"],
            env=[EnvVariable(name="TOKEN", value="t")],
        ),
        HttpMcpServer(type="http", name="web", url="http://127.0.0.1:1/mcp", headers=[]),
    ]
    mapped = panel_mcp(servers)
    assert list(mapped) == ["fs"]  # http is not advertised, so it is left out
    assert mapped["fs"].command == "npx"
    assert mapped["fs"].args[-1] == "/w" and mapped["fs"].env == {"TOKEN": "t"}


async def test_sessions_with_other_mcp_servers_get_their_own_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentls.acp import sessions
    from agentls.core.engine import EngineSettings, McpServerSettings

    built: list[EngineSettings] = []
    real = sessions.build_runtime

    def spy(workspace: Path, settings: EngineSettings, **kwargs: object) -> object:
        built.append(settings)
        return real(workspace, settings, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sessions, "build_runtime", spy)
    store = sessions.Sessions(EngineSettings())
    fs = {"fs": McpServerSettings(command="fs-server")}
    plain = await store.runtime_for(tmp_path)
    assert await store.runtime_for(tmp_path) is plain
    with_fs = await store.runtime_for(tmp_path, fs)
    assert with_fs is not plain
    assert [b.mcp_servers for b in built] == [{}, fs]
    await store.aclose()


@pytest.fixture
def named_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "calc.py").write_text(TEXT, encoding="utf-8")
    (tmp_path / "secret.py").write_text("key = 1\n", encoding="utf-8")
    (root / "linked.py").symlink_to(tmp_path / "secret.py")
    return root


def test_a_path_in_a_sentence_is_found_around_quotes_and_punctuation(
    named_workspace: Path,
) -> None:
    calc = named_workspace / "src" / "calc.py"
    for goal in ("why does `src/calc.py`, fail?", 'look at "src/calc.py".', "@src/calc.py"):
        found = named_file(goal, named_workspace).found
        assert found is not None and found.path == calc and found.lines is None, goal
    found = named_file(f"{calc}:5-6", named_workspace).found
    assert found is not None and found.path == calc and found.lines == (5, 6) and found.alone


def test_words_that_name_no_file_stay_text(named_workspace: Path) -> None:
    naming = named_file("explain src and what missing.py does", named_workspace)
    assert naming.found is None  # src is a folder
    assert naming.unknown == "missing.py"


def test_a_link_out_of_the_workspace_is_refused_by_the_name_given(
    named_workspace: Path,
) -> None:
    with pytest.raises(ResourceError, match=r"^The path linked\.py is outside the workspace"):
        named_file("explain linked.py", named_workspace)
    with pytest.raises(ResourceError, match=r"^The path \.\./secret\.py is outside"):
        named_file("../secret.py", named_workspace)
