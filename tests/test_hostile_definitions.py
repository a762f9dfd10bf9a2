"""Definition files are untrusted input: an anchor bomb, duplicate keys and duplicate agent names
are reported errors naming the file, and never cost the other agents or gigabytes of memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.core.definitions import parse_definition_text
from agentls.core.registry import AgentRegistry, default_sources


def anchor_bomb() -> str:
    """~350 bytes that expand to 9^8 (43 million) items: each line repeats the one above 9 times."""
    lines = ["name: bomb", "a: &a [x, x, x, x, x, x, x, x, x]"]
    for previous, current in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{current}: &{current} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


BOMB = anchor_bomb()
# A child that would expand the bomb dies at this address-space limit instead of taking the machine.
MEMORY_CAP = 1536 * 1024 * 1024


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / ".agentls" / "agents").mkdir(parents=True)
    (root / ".agentls" / "agents" / "bomb.yaml").write_text(BOMB)
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    return root


def agentls(workspace: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process with capped memory; it reports its peak RSS on stderr."""
    code = (
        "import sys\n"
        "from agentls.cli import main\n"
        "try:\n"
        "    status = main(sys.argv[1:])\n"
        "finally:\n"
        # VmHWM is this program's own peak: ru_maxrss would keep the forked test process's.
        "    status_lines = open('/proc/self/status').read().splitlines()\n"
        "    peak = next(int(x.split()[1]) for x in status_lines if x.startswith('VmHWM:'))\n"
        "    print(f'PEAK_RSS_KB {peak}', file=sys.stderr)\n"
        "sys.exit(status)\n"
    )

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTLS_"))}
    env["OPENAI_API_KEY"] = "sk-test"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-c", code, "--workspace", str(workspace), *argv],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=cap_memory,
        timeout=300,
        check=False,
    )


def peak_rss_mb(stderr: str) -> float:
    line = next(x for x in stderr.splitlines() if x.startswith("PEAK_RSS_KB"))
    return int(line.split()[1]) / 1024


def test_the_anchor_bomb_is_a_few_hundred_bytes() -> None:
    assert len(BOMB.encode()) < 400


def test_an_anchor_bomb_is_an_error_naming_the_file_not_an_expansion() -> None:
    definition, errors = parse_definition_text(BOMB, Path("bomb.yaml"))
    assert definition is None
    (error,) = errors
    assert "aliases" in error.message
    assert error.line == 6  # `e`, the first level past the bound (9^5 values)


def test_agents_reports_the_bomb_file_and_lists_the_others(workspace: Path) -> None:
    done = agentls(workspace, "agents", "--json")
    assert done.returncode == 1, done.stderr
    listing = json.loads(done.stdout)
    assert "explain" in [a["name"] for a in listing["agents"]]
    (error,) = listing["errors"]
    assert "bomb.yaml" in error
    assert "aliases" in error
    assert peak_rss_mb(done.stderr) < 500


def test_run_of_another_agent_works_beside_the_bomb(
    workspace: Path, server: ScriptedOpenAI
) -> None:
    server.enqueue(Text("It adds."))
    done = agentls(
        workspace,
        "run",
        "explain",
        "--file",
        str(workspace / "calc.py"),
        "--base-url",
        server.url,
        "--model",
        "scripted-model",
    )
    assert done.returncode == 0, done.stderr
    assert "It adds." in done.stdout
    assert "bomb.yaml" in done.stderr  # the warning names the broken file
    assert peak_rss_mb(done.stderr) < 500


def test_a_wide_alias_fan_out_is_refused_by_its_expanded_size() -> None:
    # Few aliases, each to a large list: the expanded size is what is bounded.
    big = "[" + ", ".join(["x"] * 2000) + "]"
    text = "name: wide\nbase: &b " + big + "\nmore: [" + ", ".join(["*b"] * 40) + "]\n"
    _, errors = parse_definition_text(text, Path("wide.yaml"))
    assert "expands to more than" in errors[0].message


def test_a_deeply_nested_file_is_an_error_not_a_crash() -> None:
    text = "name: deep\nx: " + "[" * 5000 + "]" * 5000 + "\n"
    _, errors = parse_definition_text(text, Path("deep.yaml"))
    assert "nested more than" in errors[0].message


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "huge.yaml").write_text("name: huge\n# " + "x" * 300_000 + "\n")
    registry = AgentRegistry.load(default_sources(None, [folder]))
    (error,) = registry.errors
    assert "larger than" in error.message
    assert error.path.name == "huge.yaml"


def test_a_few_aliases_still_work() -> None:
    text = (
        "name: reuse\ndescription: &d Reuses text\ninstructions: *d\nmode: tools\n"
        "tools: &t [read_file, search]\n"
    )
    definition, errors = parse_definition_text(text, Path("reuse.yaml"))
    assert errors == []
    assert definition is not None
    assert definition.instructions == "Reuses text"


def test_an_error_under_an_alias_points_at_the_first_use() -> None:
    text = "name: bad\ndescription: d\ninstructions: i\nmode: tools\ntools: &t [nope]\n"
    _, errors = parse_definition_text(text, Path("bad.yaml"))
    (error,) = errors
    assert error.field == "tools.0"
    assert error.line == 5


def test_a_duplicate_key_is_an_error_naming_the_key_and_both_lines() -> None:
    text = "name: twice\ndescription: d\ninstructions: i\nname: other\n"
    definition, errors = parse_definition_text(text, Path("twice.yaml"))
    assert definition is None
    (error,) = errors
    assert "duplicate key 'name'" in error.message
    assert "line 1" in error.message
    assert error.line == 4


def test_a_duplicate_key_in_markdown_front_matter_points_at_its_file_line() -> None:
    text = "---\nname: twice\ndescription: d\nname: again\n---\nBe helpful.\n"
    _, errors = parse_definition_text(text, Path("twice.md"))
    (error,) = errors
    assert "duplicate key 'name'" in error.message
    assert error.line == 4


def test_two_files_defining_one_agent_is_an_error_naming_both(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    body = "description: d\ninstructions: i\n"
    (folder / "a-first.yaml").write_text("# the first\nname: same\n" + body)
    (folder / "b-second.yaml").write_text(body + "name: same\n")
    registry = AgentRegistry.load(default_sources(None, [folder]))
    assert registry.get("same").path == folder / "a-first.yaml"
    (error,) = registry.errors
    assert error.path == folder / "b-second.yaml"
    assert (error.line, error.field) == (3, "name")
    assert f"already defined in {folder / 'a-first.yaml'}:2;" in error.message
    assert "this file is ignored" in error.message


def test_a_file_knows_which_other_file_its_agent_name_clashes_with(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    body = "description: d\ninstructions: i\n"
    (folder / "a-first.yaml").write_text("name: same\n" + body)
    (folder / "b-second.yaml").write_text("name: same\n" + body)
    (folder / "c-other.yaml").write_text("name: other\n" + body)
    registry = AgentRegistry.load(default_sources(None, [folder]))
    first, second = (folder / "a-first.yaml").resolve(), (folder / "b-second.yaml").resolve()

    ignored = registry.name_clash(second, "same")
    kept = registry.name_clash(first, "same")

    assert ignored is not None and ignored.this_is_ignored
    assert ignored.other.path == folder / "a-first.yaml"
    assert kept is not None and not kept.this_is_ignored
    assert kept.other.path == folder / "b-second.yaml"
    # What a buffer names now counts: renamed to a free name, or to another file's name.
    assert registry.name_clash(second, "fresh") is None
    renamed = registry.name_clash(first, "other")
    assert renamed is not None and not renamed.this_is_ignored


def test_agents_command_points_at_the_ignored_name_and_the_kept_file(tmp_path: Path) -> None:
    folder = tmp_path / ".agentls" / "agents"
    folder.mkdir(parents=True)
    first, second = folder / "a-first.yaml", folder / "b-second.yaml"
    first.write_text("name: same\ndescription: First\ninstructions: One.\n")
    second.write_text("description: Second\ninstructions: Two.\nname: same\n")

    done = agentls(tmp_path, "agents")

    assert done.returncode == 1, done.stderr
    assert (
        f"error {second}:3:1: name: agent 'same' is already defined in {first}:1; rename one "
        "of them (this file is ignored)"
    ) in done.stdout


def test_a_workspace_agent_still_overrides_a_builtin_silently(tmp_path: Path) -> None:
    folder = tmp_path / ".agentls" / "agents"
    folder.mkdir(parents=True)
    (folder / "explain.yaml").write_text("name: explain\ndescription: mine\ninstructions: i\n")
    registry = AgentRegistry.load(default_sources(tmp_path))
    assert registry.get("explain").definition.description == "mine"
    assert registry.errors == []


def test_an_impossible_date_is_an_error_not_a_crash() -> None:
    _, errors = parse_definition_text("name: x\ndescription: 2024-13-45\n", Path("x.yaml"))
    assert errors and "2024" in errors[0].message
