"""What an untrusted workspace holds that agentls ignores, as the user is told it."""

from __future__ import annotations

from pathlib import Path

from agentls.core.engine import EngineSettings, load_registry
from agentls.core.trust import ignored_when_untrusted


def test_an_empty_workspace_has_nothing_to_ignore(tmp_path: Path) -> None:
    assert ignored_when_untrusted(tmp_path) == []


def test_definitions_mcp_files_and_run_command_are_named(tmp_path: Path) -> None:
    (tmp_path / ".agentls" / "agents").mkdir(parents=True)
    (tmp_path / ".agentls" / "agents" / "a.yaml").write_text("name: a\n")
    (tmp_path / ".agentls" / "agents" / "b.md").write_text("---\nname: b\n---\n")
    (tmp_path / ".claude" / "agents").mkdir(parents=True)
    (tmp_path / ".claude" / "agents" / "c.md").write_text("---\nname: c\n---\n")
    (tmp_path / ".claude" / "agents" / "notes.yaml").write_text("not an agent\n")
    (tmp_path / ".agentls" / "mcp.json").write_text("{}")
    (tmp_path / ".mcp.json").write_text("{}")

    items = ignored_when_untrusted(tmp_path, run_command=True)

    assert items == [
        "2 agent definitions in .agentls/agents/",
        "1 agent definition in .claude/agents/",
        ".agentls/mcp.json",
        ".mcp.json",
        "run_command (agentls.runCommand.enabled)",
    ]


def test_agent_folders_inside_the_workspace_are_named_and_not_loaded(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "mine"
    (ws / "team-agents").mkdir(parents=True)
    (ws / "team-agents" / "x.yaml").write_text("name: x\ndescription: X\ninstructions: X.\n")
    outside.mkdir()
    (outside / "y.yaml").write_text("name: y\ndescription: Y\ninstructions: Y.\n")
    folders = [Path("team-agents"), outside]

    assert ignored_when_untrusted(ws, folders) == ["1 agent definition in team-agents/"]
    registry = load_registry(ws, EngineSettings(agent_folders=folders, workspace_trusted=False))
    assert "x" not in registry and "y" in registry
