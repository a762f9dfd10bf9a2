"""docs/cli.md names every option of every command: an option added to the CLI without a word in
the docs fails here, naming the command and the option."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentls.cli import build_parser

DOC = Path(__file__).parent.parent / "docs" / "cli.md"


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """(command path, its documented-to-be options) for the top level and every subcommand."""
    options: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))
        elif action.option_strings and action.help != argparse.SUPPRESS:
            longest = max(action.option_strings, key=len)
            if longest != "--help":
                options.append(longest)
    yield path, options


def section(path: tuple[str, ...]) -> str:
    """The part of docs/cli.md under `## agentls <first word>` (subcommands share it)."""
    heading = " ".join(("agentls", *path[:1]))
    parts = re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    for part in parts:
        if part.splitlines()[0].strip() == heading:
            return part
    raise AssertionError(f"docs/cli.md has no section '## {heading}'")


@pytest.mark.parametrize(("path", "options"), list(commands(build_parser())), ids=" ".join)
def test_every_option_of_the_command_is_in_its_section(
    path: tuple[str, ...], options: list[str]
) -> None:
    text = section(path)
    missing = [o for o in options if not re.search(rf"{re.escape(o)}(?![\w-])", text)]
    assert missing == [], f"docs/cli.md, 'agentls {' '.join(path)}': document {missing}"


def test_the_readme_points_to_the_reference() -> None:
    readme = (DOC.parent.parent / "README.md").read_text(encoding="utf-8")
    assert "docs/cli.md" in readme
