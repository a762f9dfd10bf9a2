"""Built-in workspace tools: read_file, list_files, search and propose_edit, all inside the sandbox.

None of them writes a file: propose_edit returns an edit artifact that an adapter applies.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import re2

from agentls.core.lines import line_body, split_lines
from agentls.core.llm import ToolSpec
from agentls.core.target import ProposedEdit, TextRange, position_of, text_sha256
from agentls.core.tools.base import Deadline, Tool, ToolResult, off_loop, truncate
from agentls.core.tools.sandbox import SandboxError, WorkspaceSandbox

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".agentls",
        "dist",
        "build",
    }
)
MAX_LISTED = 300
MAX_MATCHES = 100
MAX_FILE_BYTES = 1_000_000
MAX_PATTERN_CHARS = 2_000
# Seconds a walk (list_files, search) runs before it returns what it found so far, and the
# limit of the whole call (the walk stops well before it).
WALK_TIME_LIMIT = 10.0
WALK_CALL_LIMIT = 30.0


def _walk(root: Path, start: Path, deadline: Deadline) -> Iterator[Path]:
    """Regular files under `start`, folders in name order, without following links out of `root`.

    FIFOs, sockets and devices are skipped (opening a FIFO blocks until a writer comes); folder
    links are not followed; file links count only when they land on a regular file inside root.
    """
    folders = [start]
    while folders:
        if deadline.expired:
            raise _Stopped
        folder = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIPPED_DIRS:
                        subfolders.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) or (
                    entry.is_symlink() and _links_to_file_inside(Path(entry.path), root)
                ):
                    yield Path(entry.path)
            except OSError:
                continue
        folders.extend(reversed(subfolders))


def _links_to_file_inside(link: Path, root: Path) -> bool:
    target = link.resolve()
    if root not in target.parents:
        return False
    try:
        return stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        return False


class _Stopped(Exception):
    """The walk's deadline passed."""


def _read_bounded(path: Path, limit: int) -> str | None:
    """A regular file's UTF-8 text, or None for anything else (special, too large, binary).

    Opened without blocking and checked on the open descriptor, so a file swapped for a FIFO
    after the walk saw it cannot hang the read.
    """
    try:
        fd = os.open(path.resolve(), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > limit:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _string(arguments: dict[str, Any], name: str, default: str | None = None) -> str:
    value = arguments.get(name, default)
    if not isinstance(value, str):
        raise SandboxError(f"argument {name!r} must be a string")
    return value


def _line_number(arguments: dict[str, Any], name: str, default: int) -> int:
    value = arguments.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SandboxError(f"argument {name!r} must be a line number, not {value!r}") from None
    if number < 1:
        raise SandboxError(f"argument {name!r} must be 1 or more, not {number}")
    return number


class ReadFile:
    read_only = True
    spec = ToolSpec(
        name="read_file",
        description="Read a text file of the workspace, with line numbers. Optional 1-based line range.",
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "workspace-relative path"},
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
            },
            "required": ["path"],
        },
    )

    def __init__(self, sandbox: WorkspaceSandbox) -> None:
        self.sandbox = sandbox

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            path = self.sandbox.resolve(_string(arguments, "path"))
        except SandboxError as exc:
            return ToolResult.error(str(exc))
        if path.is_dir():
            return ToolResult.error(f"{arguments['path']!r} is a folder; use list_files")
        if path.stat().st_size > MAX_FILE_BYTES:
            return ToolResult.error(f"{arguments['path']!r} is larger than {MAX_FILE_BYTES} bytes")
        try:
            lines = [line_body(line) for line in split_lines(self.sandbox.read_text(path))]
        except UnicodeDecodeError:
            return ToolResult.error(f"{arguments['path']!r} is not a UTF-8 text file")
        try:
            first = _line_number(arguments, "start_line", 1)
            last = _line_number(arguments, "end_line", len(lines))
        except SandboxError as exc:
            return ToolResult.error(str(exc))
        if lines and first > len(lines):
            return ToolResult.error(
                f"start_line {first} is past the end of {arguments['path']!r} ({len(lines)} lines)"
            )
        shown = [f"{n:>5}  {lines[n - 1]}" for n in range(first, min(last, len(lines)) + 1)]
        return ToolResult(truncate("\n".join(shown) or "(empty file)"))


class ListFiles:
    read_only = True
    spec = ToolSpec(
        name="list_files",
        description="List files under a workspace folder (default: the root), optionally filtered by a glob.",
        parameters={
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "workspace-relative folder",
                    "default": ".",
                },
                "pattern": {"type": "string", "description": "glob on the file name, e.g. *.py"},
            },
        },
    )

    def __init__(self, sandbox: WorkspaceSandbox, walk_limit: float = WALK_TIME_LIMIT) -> None:
        self.sandbox = sandbox
        self.walk_limit = walk_limit
        self.call_time_limit = max(WALK_CALL_LIMIT, walk_limit)

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            folder = self.sandbox.resolve(_string(arguments, "path", "."))
            pattern = _string(arguments, "pattern", "*")
        except SandboxError as exc:
            return ToolResult.error(str(exc))
        if len(pattern) > MAX_PATTERN_CHARS:
            return ToolResult.error(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
        if not folder.is_dir():
            return ToolResult.error(f"{arguments.get('path')!r} is not a folder")
        deadline = Deadline(self.walk_limit)
        return await off_loop(lambda: self._list(folder, pattern, deadline), deadline)

    def _list(self, folder: Path, pattern: str, deadline: Deadline) -> ToolResult:
        found = []
        try:
            for path in _walk(self.sandbox.root, folder, deadline):
                if fnmatch.fnmatch(path.name, pattern):
                    found.append(self.sandbox.relative(path))
                    if len(found) >= MAX_LISTED:
                        found.append(f"… (stopped after {MAX_LISTED} files)")
                        break
        except _Stopped:
            found.append(f"… (stopped after {self.walk_limit:g} s; list a smaller folder)")
        return ToolResult(truncate("\n".join(found) or "(no files)"))


class Search:
    read_only = True
    spec = ToolSpec(
        name="search",
        description=(
            "Search workspace text files for a regular expression (RE2 syntax: no backreferences "
            "or lookaround); returns path:line: text."
        ),
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "regular expression (RE2 syntax)"},
                "path": {"type": "string", "description": "folder to search in", "default": "."},
            },
            "required": ["query"],
        },
    )

    def __init__(self, sandbox: WorkspaceSandbox, walk_limit: float = WALK_TIME_LIMIT) -> None:
        self.sandbox = sandbox
        self.walk_limit = walk_limit
        self.call_time_limit = max(WALK_CALL_LIMIT, walk_limit)

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            query = _string(arguments, "query")
            folder = self.sandbox.resolve(_string(arguments, "path", "."))
        except SandboxError as exc:
            return ToolResult.error(str(exc))
        if len(query) > MAX_PATTERN_CHARS:
            return ToolResult.error(f"query is longer than {MAX_PATTERN_CHARS} characters")
        deadline = Deadline(self.walk_limit)
        return await off_loop(lambda: self._search(query, folder, deadline), deadline)

    def _search(self, query: str, folder: Path, deadline: Deadline) -> ToolResult:
        regex = _compile(query)
        if isinstance(regex, ToolResult):
            return regex
        matches: list[str] = []
        try:
            for path in _walk(self.sandbox.root, folder, deadline):
                text = self.sandbox.overlay(path) if self.sandbox.overlay else None
                if text is None:
                    text = _read_bounded(path, MAX_FILE_BYTES)
                if text is None:
                    continue
                for n, raw in enumerate(split_lines(text), 1):
                    line = line_body(raw)
                    if regex.search(line):
                        matches.append(f"{self.sandbox.relative(path)}:{n}: {line.strip()[:200]}")
                        if len(matches) >= MAX_MATCHES:
                            matches.append(f"… (stopped after {MAX_MATCHES})")
                            return ToolResult(truncate("\n".join(matches)))
                if deadline.expired:
                    raise _Stopped
        except _Stopped:
            matches.append(f"… (stopped after {self.walk_limit:g} s; search a smaller folder)")
        return ToolResult(truncate("\n".join(matches) or "(no matches)"))


def _compile(query: str) -> Any:
    """The RE2 program for a query (linear time, whatever the pattern), or the error to return."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 32 << 20
    try:
        return re2.compile(query, options)
    except re2.error as exc:
        unsupported = any(token in query for token in ("(?=", "(?!", "(?<=", "(?<!")) or (
            re.search(r"\\[1-9]", query) is not None
        )
        hint = (
            " (backreferences and lookaround are not supported: search cannot take a pattern "
            "that might run for ever)"
            if unsupported
            else ""
        )
        return ToolResult.error(f"query {query!r} is not a valid regular expression: {exc}{hint}")


class ProposeEdit:
    read_only = False
    spec = ToolSpec(
        name="propose_edit",
        description=(
            "Propose replacing old_text (which must occur exactly once) with new_text in a workspace "
            "file; with an empty old_text on a file that does not exist, propose creating it. "
            "The user reviews and applies the edit."
        ),
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old_text": {"type": "string"},
                "new_text": {"type": "string"},
                "description": {"type": "string"},
            },
            "required": ["path", "old_text", "new_text"],
        },
    )

    def __init__(self, sandbox: WorkspaceSandbox, agent: str) -> None:
        self.sandbox = sandbox
        self.agent = agent

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            relative = _string(arguments, "path")
            old = _string(arguments, "old_text")
            new = _string(arguments, "new_text")
            path = self.sandbox.resolve(relative, must_exist=False)
        except SandboxError as exc:
            return ToolResult.error(str(exc))
        rel = self.sandbox.relative(path)
        description = str(arguments.get("description") or "")
        if not path.exists():
            if old:
                return ToolResult.error(
                    f"{relative!r} does not exist; to create it pass an empty old_text"
                )
            edit = ProposedEdit(
                path=rel,
                range=TextRange.of(0, 0, 0, 0),
                new_text=new,
                agent=self.agent,
                description=description,
                creates_file=True,
            )
            return ToolResult(f"proposed creating {rel}", edits=[edit])
        if not path.is_file():
            return ToolResult.error(f"{rel!r} is not a file")
        if not old:
            return ToolResult.error(
                f"{rel!r} already exists; give the old_text to replace (an empty old_text only "
                "creates a new file)"
            )
        try:
            text = self.sandbox.read_text(path)
        except UnicodeDecodeError:
            return ToolResult.error(f"{rel!r} is not a UTF-8 text file")
        count = text.count(old)
        if count == 0 and "\r\n" in text and "\n" in old and "\r" not in old:
            # The model sees lines without their endings (read_file): match the file's CRLF and
            # write the new text with the same endings.
            old, new = old.replace("\n", "\r\n"), new.replace("\r\n", "\n").replace("\n", "\r\n")
            count = text.count(old)
        if count != 1:
            return ToolResult.error(
                f"old_text occurs {count} times in {rel}; it must occur exactly once (add context lines)"
            )
        start = text.index(old)
        rng = TextRange(start=position_of(text, start), end=position_of(text, start + len(old)))
        edit = ProposedEdit(
            path=rel,
            range=rng,
            new_text=new,
            agent=self.agent,
            description=description,
            base_sha256=text_sha256(text),
        )
        return ToolResult(f"proposed an edit of {rel} at line {rng.start.line + 1}", edits=[edit])


def workspace_tools(sandbox: WorkspaceSandbox, agent: str) -> dict[str, Tool]:
    tools: list[Tool] = [
        ReadFile(sandbox),
        ListFiles(sandbox),
        Search(sandbox),
        ProposeEdit(sandbox, agent),
    ]
    return {t.spec.name: t for t in tools}
