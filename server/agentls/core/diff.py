"""Proposed edits as unified diffs: what a user reviews before anything is written."""

from __future__ import annotations

import difflib
from collections import defaultdict
from pathlib import Path

from agentls.core.target import ProposedEdit, apply_edit, offset_of


def edited_texts(root: Path, edits: list[ProposedEdit]) -> dict[str, tuple[str, str]]:
    """For each edited path: (current text, text with its edits applied, last position first)."""
    by_path: dict[str, list[ProposedEdit]] = defaultdict(list)
    for edit in edits:
        by_path[edit.path].append(edit)
    out: dict[str, tuple[str, str]] = {}
    for rel, group in by_path.items():
        path = root / rel
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        after = before
        for edit in sorted(group, key=lambda e: offset_of(before, e.range.start), reverse=True):
            after = apply_edit(after, edit.range, edit.new_text)
        out[rel] = (before, after)
    return out


def unified_diff(root: Path, edits: list[ProposedEdit]) -> str:
    chunks: list[str] = []
    for rel, (before, after) in edited_texts(root, edits).items():
        chunks.extend(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"a/{rel}",
                tofile=f"b/{rel}",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)
