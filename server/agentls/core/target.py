"""What an agent works on (a file or a range in it) and the edits it proposes, free of editor types.

Positions are 0-based lines and characters with an exclusive end, as in LSP, so adapters
translate nothing but names. Characters count Unicode code points.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Position(BaseModel):
    model_config = ConfigDict(frozen=True)
    line: int = Field(ge=0)
    character: int = Field(ge=0)


class TextRange(BaseModel):
    model_config = ConfigDict(frozen=True)
    start: Position
    end: Position

    @model_validator(mode="after")
    def _ordered(self) -> TextRange:
        if (self.end.line, self.end.character) < (self.start.line, self.start.character):
            raise ValueError("range end comes before its start")
        return self

    @classmethod
    def of(cls, sl: int, sc: int, el: int, ec: int) -> TextRange:
        return cls(start=Position(line=sl, character=sc), end=Position(line=el, character=ec))

    @classmethod
    def whole_lines(cls, first: int, last: int, text: str) -> TextRange:
        """Lines first..last (1-based, inclusive) of text, as a range; clamps to the text."""
        lines = text.splitlines(keepends=True)
        if first < 1 or last < first:
            raise ValueError(f"line range {first}-{last} is empty or starts before line 1")
        if first > max(len(lines), 1):
            raise ValueError(f"line {first} is past the end of the file ({len(lines)} lines)")
        last = min(last, len(lines))
        if last == len(lines) and lines and not lines[-1].endswith("\n"):
            return cls.of(first - 1, 0, last - 1, len(lines[-1]))
        return cls.of(first - 1, 0, last, 0)

    def is_empty(self) -> bool:
        return self.start == self.end


def offset_of(text: str, pos: Position) -> int:
    """Index into text of a position, clamped to the line's end and to the text's end."""
    lines = text.splitlines(keepends=True)
    if pos.line >= len(lines):
        return len(text)
    line = lines[pos.line]
    body = line.rstrip("\r\n")
    return sum(len(x) for x in lines[: pos.line]) + min(pos.character, len(body))


def position_of(text: str, offset: int) -> Position:
    before = text[:offset]
    line = before.count("\n")
    return Position(line=line, character=offset - (before.rfind("\n") + 1))


def slice_range(text: str, rng: TextRange) -> str:
    return text[offset_of(text, rng.start) : offset_of(text, rng.end)]


def apply_edit(text: str, rng: TextRange, new_text: str) -> str:
    return text[: offset_of(text, rng.start)] + new_text + text[offset_of(text, rng.end) :]


class Target(BaseModel):
    """A file, optionally narrowed to a range; `text` is the editor's buffer when it has unsaved changes."""

    path: Path
    range: TextRange | None = None
    text: str | None = None

    def content(self) -> str:
        if self.text is not None:
            return self.text
        return self.path.read_text(encoding="utf-8")

    def selected(self) -> str:
        whole = self.content()
        return slice_range(whole, self.range) if self.range else whole

    def effective_range(self) -> TextRange:
        whole = self.content()
        return self.range or TextRange(
            start=Position(line=0, character=0), end=position_of(whole, len(whole))
        )


class ProposedEdit(BaseModel):
    """A replacement of `range` in the file at `path` (workspace-relative), proposed by an agent."""

    path: str
    range: TextRange
    new_text: str
    agent: str
    description: str = ""
    creates_file: bool = False
