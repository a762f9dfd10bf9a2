"""Tables that fit the terminal: on a narrow one (a split pane, a CI log's 80 columns) the least
needed columns go, whole, rather than every column being squeezed until the names vanish."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def width_of(cells: Sequence[str]) -> int:
    """What a column of these cells (its header first) takes: its text, a space each side and a
    rule."""
    return max(map(len, cells)) + 3


def fit_columns(
    terminal: int,
    reserved: int,
    columns: Mapping[str, Sequence[str]],
    dropped_first: Sequence[str],
) -> list[str]:
    """The columns to show: every one of `columns` (name: header and cells) when they fit beside
    `reserved` characters (the columns that always stay), else without those of `dropped_first`,
    in that order, until they do (or none is left to drop)."""
    shown = list(columns)
    for optional in dropped_first:
        if used(reserved, columns, shown) <= terminal:
            break
        shown.remove(optional)
    return shown


def used(reserved: int, columns: Mapping[str, Sequence[str]], shown: Sequence[str]) -> int:
    """The width of a table of `shown` beside `reserved`, with its closing rule."""
    return reserved + sum(width_of(columns[c]) for c in shown) + 1
