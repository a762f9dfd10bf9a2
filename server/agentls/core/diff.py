"""Proposed edits as unified diffs: what a user reviews before anything is written.

Lines follow LSP's model (core/lines.py): `\\n`, `\\r\\n` and `\\r` end a line, nothing else.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from pathlib import Path

from agentls.core.lines import split_lines
from agentls.core.target import ProposedEdit, apply_edit, offset_of, read_exact


def group_by_path(edits: list[ProposedEdit]) -> dict[str, list[ProposedEdit]]:
    by_path: dict[str, list[ProposedEdit]] = defaultdict(list)
    for edit in edits:
        by_path[edit.path].append(edit)
    return by_path


def applied(before: str, edits: list[ProposedEdit]) -> str:
    """`before` with `edits` (non-overlapping ranges of it) applied, last position first."""
    after = before
    for edit in sorted(edits, key=lambda e: offset_of(before, e.range.start), reverse=True):
        after = apply_edit(after, edit.range, edit.new_text)
    return after


def edited_texts(root: Path, edits: list[ProposedEdit]) -> dict[str, tuple[str, str]]:
    """For each edited path: (current text, text with its edits applied)."""
    out: dict[str, tuple[str, str]] = {}
    for rel, group in group_by_path(edits).items():
        path = root / rel
        before = read_exact(path) if path.exists() else ""
        out[rel] = (before, applied(before, group))
    return out


def unified_diff(root: Path, edits: list[ProposedEdit]) -> str:
    chunks: list[str] = []
    for rel, (before, after) in edited_texts(root, edits).items():
        chunks.extend(
            difflib.unified_diff(
                split_lines(before), split_lines(after), fromfile=f"a/{rel}", tofile=f"b/{rel}"
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)
