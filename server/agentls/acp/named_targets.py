"""Targets named in a prompt's text, for panels that send text only: `/explain calc.py`,
`/document src/calc.py:3-9`.

When no file is attached, the first word of the goal that names an existing file is the target:
a path relative to the workspace (or absolute, or `~/...`), with `:A-B` or `:A` for lines A to B.
A file outside the workspace is refused as an attached one is. Words that name no file stay
text; the first one that looks like a path is remembered, so a command that needs a target can
say that this file does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agentls.acp.commands import Delegate, Parallel
from agentls.acp.resources import ResourceError
from agentls.core.definitions import Mode
from agentls.core.registry import AgentRegistry

# Only the start of a long prompt is searched: each word costs a stat.
MAX_WORDS = 200
_LINES = re.compile(r"^(?P<path>.+?):(?P<first>\d+)(?:-(?P<last>\d+))?$")
# Quotes, brackets and punctuation around a path in a sentence (`calc.py`, "calc.py", calc.py,).
_AROUND = "\"'`()[]{}<>,;!?"
_PATHLIKE = re.compile(r"[/\\]|\.[A-Za-z0-9]{1,10}$")


@dataclass(frozen=True)
class NamedFile:
    word: str  # as written, without the quotes or punctuation around it
    path: Path  # resolved, inside the workspace
    lines: tuple[int, int] | None = None
    alone: bool = False  # the goal is this word and nothing else


@dataclass(frozen=True)
class Naming:
    """What the goal's words name: a file of the workspace, or a path-like word that is none."""

    found: NamedFile | None = None
    unknown: str | None = None


def named_file(goal: str, workspace: Path) -> Naming:
    """The first file the goal names (blocking: it looks at the disk).

    Raises ResourceError when that file lies outside the workspace.
    """
    unknown = None
    words = goal.split()
    for raw in words[:MAX_WORDS]:
        word = raw.lstrip(_AROUND + "@").rstrip(_AROUND + ".:")
        if not word:
            continue
        spec, lines = _split_lines(word)
        path = _resolved(workspace, spec)
        if path is None or not _is_file(path):
            if unknown is None and _PATHLIKE.search(spec):
                unknown = spec
            continue
        if path != workspace and workspace not in path.parents:
            raise ResourceError(
                f"The path {spec} is outside the workspace {workspace}. Name a file under it "
                "(relative to the workspace), or open the folder that contains the file as the "
                "session's workspace."
            )
        return Naming(NamedFile(word, path, lines, alone=len(words) == 1))
    return Naming(unknown=unknown)


def _split_lines(word: str) -> tuple[str, tuple[int, int] | None]:
    match = _LINES.match(word)
    if match is None:
        return word, None
    first = int(match.group("first"))
    last = int(match.group("last") or first)
    return match.group("path"), (first, last)


def _resolved(workspace: Path, spec: str) -> Path | None:
    try:
        path = Path(spec).expanduser()
        return (workspace / path).resolve()  # an absolute path replaces the workspace
    except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL, an unknown ~user
        return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a folder it may not enter: not a file it can name
        return False


def missing_target(
    command: Delegate | Parallel,
    registry: AgentRegistry,
    extra: str,
    naming: Naming,
    workspace: Path,
) -> str | None:
    """What to tell when the command has nothing to work on, with how to name a target.

    An edit-mode agent needs a file to edit; an answer-mode agent needs a file, a selection or a
    goal. Tools-mode agents find their own files.
    """
    agents = [command.agent] if isinstance(command, Delegate) else command.agents
    modes = {name: registry.get(name).definition.mode for name in agents}
    usage = (
        f"/{command.agent}" if isinstance(command, Delegate) else f"/parallel {','.join(agents)}"
    )
    examples = f"`{usage} src/app.py`, or `{usage} src/app.py:3-9` for lines 3 to 9"
    editing = [name for name, mode in modes.items() if mode is Mode.EDIT]
    if editing:
        message = (
            f"**{editing[0]}** edits a file and none was given. Attach the file or a selection, "
            f"or name it after the command, relative to the workspace: {examples}."
        )
    elif not command.goal and not extra and Mode.TOOLS not in modes.values():
        message = (
            f"**{agents[0]}** needs something to work on. Attach a file or a selection, name a "
            f"file after the command, relative to the workspace ({examples}), or say after the "
            "command what it should do."
        )
    else:
        return None
    if naming.unknown is not None:
        message = f"{naming.unknown} is not a file in the workspace {workspace}. {message}"
    return message
