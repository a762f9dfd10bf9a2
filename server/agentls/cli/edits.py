"""Turns proposed edits into unified diffs and, with --apply, writes them to disk (CLI only)."""

from __future__ import annotations

import os
from pathlib import Path

from agentls.core.diff import edited_texts, unified_diff
from agentls.core.target import ProposedEdit

__all__ = ["edited_texts", "unified_diff", "write_edits"]


def write_edits(root: Path, edits: list[ProposedEdit]) -> list[tuple[bool, str | None]]:
    """Write each edited file atomically (temp file + rename), so a crash never leaves half a file."""
    results: dict[str, tuple[bool, str | None]] = {}
    for rel, (_, after) in edited_texts(root, edits).items():
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.agentls-tmp")
            tmp.write_text(after, encoding="utf-8")
            os.replace(tmp, path)
            results[rel] = (True, None)
        except OSError as exc:
            results[rel] = (False, f"cannot write {rel}: {exc.strerror}")
    return [results[e.path] for e in edits]
