"""docs/security.md stays true: its allow-list examples behave as the table says, and its example
agent definition loads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from agentls.core.definitions import AgentDefinition
from agentls.core.tools.command import AllowPattern, CommandError, parse_command

DOC = (Path(__file__).parent.parent / "docs" / "security.md").read_text(encoding="utf-8")


def table_rows() -> list[tuple[str, list[str], list[str]]]:
    section = DOC[DOC.index("### Allow-list patterns") :]
    rows = re.findall(r"^\| `([^`]+)` \| (.*?) \| (.*?) \|$", section, flags=re.MULTILINE)
    return [(p, re.findall(r"`([^`]+)`", yes), re.findall(r"`([^`]+)`", no)) for p, yes, no in rows]


def allowed(pattern: str, command: str) -> bool:
    parsed_pattern = AllowPattern.parse(pattern)
    try:
        parsed = parse_command(command, [parsed_pattern])
    except CommandError:
        return False
    return parsed_pattern.matches(parsed)


@pytest.mark.parametrize(("pattern", "allows", "refuses"), table_rows(), ids=lambda v: str(v))
def test_each_documented_pattern_allows_and_refuses_what_the_table_says(
    pattern: str, allows: list[str], refuses: list[str]
) -> None:
    for command in allows:
        assert allowed(pattern, command), f"{pattern!r} should allow {command!r}"
    for command in refuses:
        assert not allowed(pattern, command), f"{pattern!r} should refuse {command!r}"


def test_the_table_covers_word_and_shell_patterns() -> None:
    patterns = [p for p, _, _ in table_rows()]
    assert len(patterns) >= 6
    assert any(p.startswith("shell:") for p in patterns)
    line = patterns[-1].removeprefix("shell:").strip()
    assert allowed(patterns[-1], line)
    assert not allowed(patterns[-1], shlex.join(shlex.split(line)) + "; rm x")


def test_the_example_agent_definition_is_valid() -> None:
    block = re.search(r"```yaml\n(name: test-fixer.*?)```", DOC, flags=re.DOTALL)
    assert block is not None
    definition = AgentDefinition.model_validate(yaml.safe_load(block.group(1)))
    assert "run_command" in definition.tools
