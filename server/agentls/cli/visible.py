"""Text from outside agentls, made safe to print: control characters are shown, never obeyed.

A model's answer, a tool argument, a definition's description or an MCP server's result may hold
terminal escapes (OSC 52 writes the clipboard, OSC 8 forges a link, `ESC[2J` clears the screen),
carriage returns that overwrite what was printed, or bidirectional overrides and invisible
characters that make the text read differently from what it is. The CLI prints such text only
through `visible` (plain text), `markup` (a rich markup string), `cell` (a rich `Text`) or
`json_visible` (JSON), the same on a terminal and in a pipe; log records that reach logging's
handler of last resort go through `VisibleLastResort`.

The scheme is Python's string-literal escapes, in ASCII: ESC is shown as the four characters
`\\x1b`, the C1 CSI as `\\x9b`, DEL as `\\x7f`, U+202E as `\\u202e`, a tag character as
`\\U000e0041`, and, in one-line fields, a newline, carriage return and tab as `\\n`, `\\r`, `\\t`.
Shown are the Unicode categories Cc (C0, DEL, C1), Cf (format characters: bidirectional
controls, zero-width characters, the byte-order mark, tag characters), Cs (lone surrogates,
which cannot even be encoded) and Zl/Zp (line and paragraph separators). Multi-line text keeps its
newlines, tabs and CRLF line ends; a carriage return anywhere else is shown.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import unicodedata
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # rich is imported when used: `agentls serve` starts without it
    from rich.text import Text

_SHOWN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Candidates only: anything but printable ASCII is checked one character at a time.
_ONE_LINE = re.compile(r"[^\x20-\x7e]")
_MULTI_LINE = re.compile(r"\r(?!\n)|[^\x20-\x7e\t\n\r]")
# In JSON every character above ASCII sits inside a string, where \uXXXX means the same.
_JSON = re.compile(r"[^\x00-\x7e]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


@functools.lru_cache(maxsize=4096)
def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _SHOWN_CATEGORIES


def _escaped(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _show(match: re.Match[str]) -> str:
    char = match.group()
    return _escaped(char) if char in _NAMED or _hidden(char) else char


def visible(text: str, *, one_line: bool = False) -> str:
    """`text` with its control and invisible characters written out (see the module docstring).

    `one_line` also shows newlines, carriage returns and tabs: for a field of a one-line record
    (a progress line, a table cell), where a line break would forge the next record.
    """
    return (_ONE_LINE if one_line else _MULTI_LINE).sub(_show, text)


def markup(text: object, *, one_line: bool = True) -> str:
    """`visible(str(text))` for a rich markup string: `[bold]` in the text stays literal."""
    from rich.markup import escape

    return escape(visible(str(text), one_line=one_line))


def cell(text: object, *, one_line: bool = False, style: str = "") -> Text:
    """A rich `Text` (never parsed as markup or emoji codes) of `visible(str(text))`."""
    from rich.text import Text

    return Text(visible(str(text), one_line=one_line), style=style)


def _json_escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char != "\x7f" and not _hidden(char):
        return char
    code = ord(char)
    if code > 0xFFFF:  # JSON spells an astral character as its UTF-16 surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def json_visible(text: str) -> str:
    """JSON text (from json.dumps or pydantic) with DEL, C1 and invisible characters as \\uXXXX.

    Both serializers already escape C0 controls; the rest pass raw and would reach a terminal.
    The JSON means the same: a parser reads the same strings back.
    """
    return _JSON.sub(_json_escaped, text)


class JsonVisibleWriter:
    """A text stream for JSON writers: each write goes through `json_visible`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(json_visible(text))

    def flush(self) -> None:
        self.out.flush()


class VisibleStream:
    """Streamed text (a model's answer, delta by delta) made visible as it arrives.

    A delta may end between the CR and LF of a CRLF line end: a trailing CR waits for the next
    delta, so a line end is kept and a lone CR is still shown.
    """

    def __init__(self) -> None:
        self._pending_cr = False

    def feed(self, delta: str) -> str:
        text = ("\r" if self._pending_cr else "") + delta
        self._pending_cr = text.endswith("\r")
        return visible(text[:-1] if self._pending_cr else text)

    def finish(self) -> str:
        """What is still held back (a lone CR at the very end), shown."""
        held, self._pending_cr = self._pending_cr, False
        return "\\r" if held else ""


class VisibleLastResort(logging.Handler):
    """logging's handler of last resort (warnings to stderr when nothing configured logging),
    with the record's text made visible: a warning may quote a repository's configuration."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(visible(self.format(record)) + "\n")
        except Exception:
            self.handleError(record)
