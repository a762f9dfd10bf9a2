"""What an agent works on (a file or a range in it) and the edits it proposes, free of editor types.

Positions are 0-based lines and characters with an exclusive end, as in LSP, so adapters
translate nothing but names. Characters count Unicode code points; lines end at `\n`, `\r\n` or
`\r` only (see `core.lines`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from agentls.core import lines as _lines


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
        lines = _lines.split_lines(text)
        if first < 1 or last < first:
            raise ValueError(f"line range {first}-{last} is empty or starts before line 1")
        if first > max(len(lines), 1):
            raise ValueError(f"line {first} is past the end of the file ({len(lines)} lines)")
        last = min(last, len(lines))
        if last == len(lines) and lines and not lines[-1].endswith(_lines.LINE_ENDINGS):
            return cls.of(first - 1, 0, last - 1, len(lines[-1]))
        return cls.of(first - 1, 0, last, 0)

    def is_empty(self) -> bool:
        return self.start == self.end


def offset_of(text: str, pos: Position) -> int:
    """Index into text of a position, clamped to the line's end and to the text's end."""
    return _lines.offset_at(text, pos.line, pos.character)


def position_of(text: str, offset: int) -> Position:
    line, character = _lines.position_at(text, offset)
    return Position(line=line, character=character)


def read_exact(path: Path) -> str:
    """A file's text exactly as stored: no newline translation (CRLF and lone CR stay)."""
    return path.read_bytes().decode("utf-8")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def slice_range(text: str, rng: TextRange) -> str:
    return text[offset_of(text, rng.start) : offset_of(text, rng.end)]


def apply_edit(text: str, rng: TextRange, new_text: str) -> str:
    return text[: offset_of(text, rng.start)] + new_text + text[offset_of(text, rng.end) :]


class Target(BaseModel):
    """A file, optionally narrowed to a range; `text` is the editor's buffer when it has unsaved changes."""

    path: Path
    range: TextRange | None = None
    text: str | None = None
    # What the run read from disk, kept so that every later look (and the edit's base) agrees.
    _read: str | None = PrivateAttr(default=None)

    def content(self) -> str:
        if self.text is not None:
            return self.text
        if self._read is None:
            self._read = read_exact(self.path)
        return self._read

    @classmethod
    def read_as(cls, path: Path, text: str, rng: TextRange | None = None) -> Target:
        """A target on disk whose text was already read (so the range and the run see one text)."""
        target = cls(path=path, range=rng)
        target._read = text
        return target

    def content_sha256(self) -> str | None:
        """The hash of the text the run worked on, or None before anything was read."""
        if self.text is not None:
            return text_sha256(self.text)
        return None if self._read is None else text_sha256(self._read)

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
    # sha256 of the file's text the range refers to: an adapter that writes files refuses the
    # edit when the file no longer has that text.
    base_sha256: str | None = None
