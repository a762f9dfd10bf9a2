"""The one line model of agentls: LSP's. A line ends at `\\n`, `\\r\\n` or `\\r`, nothing else.

`str.splitlines` also splits on form feeds, `\\x85`, U+2028 and other separators that editors and
LSP positions do not count, so positions computed with it land on the wrong line. Every module
that turns text into lines or positions goes through here.

Characters are counted in Unicode code points (the engine's unit); `utf16_units` and
`code_points_of` convert a line's character offset to and from UTF-16 code units (LSP's default).
"""

from __future__ import annotations

import re

_BREAK = re.compile(r"\r\n|\r|\n")
LINE_ENDINGS = ("\r\n", "\r", "\n")


def split_lines(text: str) -> list[str]:
    """The lines of `text`, each with its line ending; no empty line after a final line ending."""
    lines: list[str] = []
    start = 0
    for match in _BREAK.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def line_body(line: str) -> str:
    """A line without its line ending."""
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith(("\n", "\r")):
        return line[:-1]
    return line


def line_starts(text: str) -> list[int]:
    """Offsets where each line starts; a text ending in a line ending has an empty last line."""
    return [0, *(m.end() for m in _BREAK.finditer(text))]


def line_count(text: str) -> int:
    """Lines as an editor numbers them: a final line ending opens one more (empty) line."""
    return len(line_starts(text))


def offset_at(text: str, line: int, character: int) -> int:
    """Index into `text` of (line, character in code points), clamped to the line's end and the text."""
    starts = line_starts(text)
    if line >= len(starts):
        return len(text)
    start = starts[line]
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    body_end = start + len(line_body(text[start:end]))
    return min(start + character, body_end)


def position_at(text: str, offset: int) -> tuple[int, int]:
    """(line, character in code points) of an index into `text` (clamped into the text).

    An index between the `\\r` and `\\n` of one line ending counts as the end of that line.
    """
    offset = max(0, min(offset, len(text)))
    starts = line_starts(text)
    lo, hi = 0, len(starts) - 1
    while lo < hi:  # the last line start <= offset
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    line = lo
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    body = line_body(text[starts[line] : end])
    return line, min(offset - starts[line], len(body))


def utf16_units(line: str, character: int) -> int:
    """UTF-16 code units in the first `character` code points of `line`."""
    head = line[:character]
    return len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)


def code_points_of(line: str, units: int) -> int:
    """Code points covering `units` UTF-16 units of `line` (a split surrogate pair rounds down)."""
    count = 0
    for i, ch in enumerate(line):
        count += 2 if ord(ch) > 0xFFFF else 1
        if count > units:
            return i
    return len(line)


def utf8_units(line: str, character: int) -> int:
    return len(line[:character].encode("utf-8"))


def code_points_of_utf8(line: str, units: int) -> int:
    count = 0
    for i, ch in enumerate(line):
        count += len(ch.encode("utf-8"))
        if count > units:
            return i
    return len(line)


def line_text(text: str, line: int) -> str:
    """The body of line `line` (no line ending); empty past the end."""
    starts = line_starts(text)
    if line >= len(starts):
        return ""
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    return line_body(text[starts[line] : end])


def to_client_character(text: str, line: int, character: int, encoding: str) -> int:
    """A code-point character on `line` in the client's position encoding ('utf-16', 'utf-8', 'utf-32')."""
    if encoding == "utf-32":
        return character
    body = line_text(text, line)
    if encoding == "utf-8":
        return utf8_units(body, character)
    return utf16_units(body, character)


def from_client_character(text: str, line: int, units: int, encoding: str) -> int:
    """The code-point character of `units` in the client's encoding, clamped to the line's end."""
    body = line_text(text, line)
    if encoding == "utf-32":
        return min(units, len(body))
    if encoding == "utf-8":
        return code_points_of_utf8(body, units)
    return code_points_of(body, units)


def with_line_endings_of(new: str, like: str) -> str:
    """`new` with its line endings made those of `like` (its first one), so a CRLF file stays CRLF."""
    found = _BREAK.search(like)
    if found is None or (found.group() == "\n" and "\r" not in new):
        return new
    return _BREAK.sub(found.group(), new)
