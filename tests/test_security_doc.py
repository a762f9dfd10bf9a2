"""docs/security.md stays true: its allow-list examples behave as the table says, every example
pattern the docs show refuses the attacks, and its example agent definition loads."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from agentls.core.definitions import AgentDefinition
from agentls.core.tools.command import AllowPattern, CommandError, parse_command

ROOT = Path(__file__).parent.parent
DOC = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
# Model-chosen commands that would delete, overwrite, load or read outside the workspace.
ATTACKS = [
    "python -m pytest --basetemp=/x",
    "python -m pytest --junitxml=/etc/x",
    "python -m pytest -p evil",
    "python -m pytest -c /other.ini",
    "python -m pytest --rootdir=/",
    "python -m pytest /tmp/t.py",
    "pytest tests/../src/x.py",
    "ruff check --fix",
    "ruff check --config=x",
]


def table_rows() -> list[tuple[str, list[str], list[str]]]:
    section = DOC[DOC.index("### Allow-list patterns") :]
    rows = re.findall(r"^\| `([^`]+)` \| (.*?) \| (.*?) \|$", section, flags=re.MULTILINE)
    return [(p, re.findall(r"`([^`]+)`", yes), re.findall(r"`([^`]+)`", no)) for p, yes, no in rows]


def allowed(pattern: str, command: str, workspace: Path) -> bool:
    parsed_pattern = AllowPattern.parse(pattern)
    try:
        parsed = parse_command(command, [parsed_pattern])
    except CommandError:
        return False
    return parsed_pattern.matches(parsed, workspace)


def example_patterns() -> list[str]:
    """Every allow-list pattern the docs, the README and the VS Code setting show as an example."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"--allow-command '([^']+)'", DOC + readme)
    found += [
        p for block in re.findall(r'runCommand\.allow": (\[.*?\])', DOC) for p in json.loads(block)
    ]
    package = json.loads((ROOT / "client-vscode" / "package.json").read_text(encoding="utf-8"))
    setting = package["contributes"]["configuration"]["properties"]["agentls.runCommand.allow"]
    described = re.findall(r"`([^`]+)`", setting["markdownDescription"])
    found += [p for p in described if p.startswith(("python ", "npm ", "ruff ", "pytest "))]
    return found


@pytest.mark.parametrize(("pattern", "allows", "refuses"), table_rows(), ids=lambda v: str(v))
def test_each_documented_pattern_allows_and_refuses_what_the_table_says(
    pattern: str, allows: list[str], refuses: list[str], tmp_path: Path
) -> None:
    for command in allows:
        assert allowed(pattern, command, tmp_path), f"{pattern!r} should allow {command!r}"
    for command in refuses:
        assert not allowed(pattern, command, tmp_path), f"{pattern!r} should refuse {command!r}"


def test_the_table_covers_word_and_shell_patterns(tmp_path: Path) -> None:
    patterns = [p for p, _, _ in table_rows()]
    assert len(patterns) >= 6
    assert any(p.startswith("shell:") for p in patterns)
    line = patterns[-1].removeprefix("shell:").strip()
    assert allowed(patterns[-1], line, tmp_path)
    assert not allowed(patterns[-1], shlex.join(shlex.split(line)) + "; rm x", tmp_path)


def test_the_table_shows_each_attack_as_not_allowed() -> None:
    refused = {command for _, _, refuses in table_rows() for command in refuses}
    assert set(ATTACKS) <= refused


@pytest.mark.parametrize("pattern", sorted(set(example_patterns())))
def test_every_example_pattern_refuses_the_attacks(pattern: str, tmp_path: Path) -> None:
    for attack in ATTACKS:
        assert not allowed(pattern, attack, tmp_path), f"{pattern!r} allows {attack!r}"


def test_the_examples_include_the_test_running_pattern(tmp_path: Path) -> None:
    patterns = example_patterns()
    assert "python -m pytest -q -x **" in patterns
    command = "python -m pytest -q -x tests/test_app.py"
    assert allowed("python -m pytest -q -x **", command, tmp_path)


def test_the_example_agent_definition_is_valid() -> None:
    block = re.search(r"```yaml\n(name: test-fixer.*?)```", DOC, flags=re.DOTALL)
    assert block is not None
    definition = AgentDefinition.model_validate(yaml.safe_load(block.group(1)))
    assert "run_command" in definition.tools
    assert "python -m pytest -q -x <test file>" in definition.instructions
