"""Where a proposed edit lands in the text the user has now.

An agent computes an edit's range against the text it saw: the target as read at the start of
the prompt (the editor's buffer), or the disk for files its tools read. When the buffer differs
from that text (unsaved changes, lines added above), the range would land in the wrong place;
the edit is anchored by the text it replaces instead, and refused when that is ambiguous.
"""

from __future__ import annotations

from pathlib import Path

from agentls.core.target import ProposedEdit, TextRange, position_of, slice_range


def disk_text(path: Path) -> str | None:
    """A file's text with LF line ends, or None when it does not exist (blocking)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return f.read().replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError):
        return None


def locate(current: str, replaced: str | None, edit: ProposedEdit) -> TextRange | None:
    """The range in `current` of the text the edit replaces; None when it cannot be found once.

    `replaced` is the text at the edit's range in what the agent saw (None: unknown, trust the range).
    """
    rng = edit.range
    if replaced is None or slice_range(current, rng) == replaced:
        return rng
    if not replaced or current.count(replaced) != 1:
        return None
    start = current.index(replaced)
    return TextRange(
        start=position_of(current, start), end=position_of(current, start + len(replaced))
    )
