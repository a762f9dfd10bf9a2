"""The line model: LSP's (`\\n`, `\\r\\n`, `\\r`) in every module, never str.splitlines."""

from __future__ import annotations

import pytest

from agentls.core import lines
from agentls.core.target import Position, TextRange, apply_edit, offset_of, position_of


@pytest.mark.parametrize(
    "separator", ["\x0c", "\x85", "\u2028", "\u2029", "\x1c", "\x1d", "\x1e", "\x0b"]
)
def test_only_lsp_line_endings_split_lines(separator: str) -> None:
    text = f"x = 1{separator}\nb = 1\r\nc = 2\rd"
    assert lines.split_lines(text) == [f"x = 1{separator}\n", "b = 1\r\n", "c = 2\r", "d"]
    assert lines.line_count(text) == 4


def test_an_edit_after_a_form_feed_lands_on_its_own_line() -> None:
    # The reproduction of the issue: an edit to `c = 2` overwrote `b = 1`.
    text = "x = 1\x0c\nb = 1\nc = 2\n"
    start = text.index("c = 2")
    rng = TextRange(start=position_of(text, start), end=position_of(text, start + 5))
    assert rng == TextRange.of(2, 0, 2, 5)
    assert apply_edit(text, rng, "c = 3") == "x = 1\x0c\nb = 1\nc = 3\n"


def test_a_crlf_line_ending_is_one_line_end() -> None:
    text = "ab\r\ncd"
    assert position_of(text, 2) == Position(line=0, character=2)
    assert position_of(text, 3) == Position(line=0, character=2)  # between \r and \n
    assert position_of(text, 4) == Position(line=1, character=0)
    assert offset_of(text, Position(line=0, character=99)) == 2
    assert offset_of(text, Position(line=1, character=1)) == 5
    assert offset_of(text, Position(line=7, character=0)) == len(text)


def test_whole_lines_end_after_the_line_ending_or_at_the_end_of_the_text() -> None:
    assert TextRange.whole_lines(2, 2, "a\rb\rc") == TextRange.of(1, 0, 2, 0)
    assert TextRange.whole_lines(2, 3, "a\r\nb\r\nc") == TextRange.of(1, 0, 2, 1)
    assert TextRange.whole_lines(1, 1, "a\x0cb\nc\n") == TextRange.of(0, 0, 1, 0)


def test_utf16_units_count_astral_characters_twice() -> None:
    line = "a😀b"
    assert lines.utf16_units(line, 2) == 3
    assert lines.code_points_of(line, 3) == 2
    assert lines.code_points_of(line, 2) == 1  # inside the surrogate pair: rounds down
    assert lines.to_client_character("x\na😀b", 1, 3, "utf-16") == 4
    assert lines.from_client_character("x\na😀b", 1, 4, "utf-16") == 3
    assert lines.to_client_character("é", 0, 1, "utf-8") == 2
    assert lines.from_client_character("é", 0, 99, "utf-32") == 1


def test_new_text_takes_the_line_endings_of_the_file() -> None:
    assert lines.with_line_endings_of("a\nb\n", "x\r\ny\r\n") == "a\r\nb\r\n"
    assert lines.with_line_endings_of("a\nb", "x\ry") == "a\rb"
    assert lines.with_line_endings_of("a\r\nb", "x\ny") == "a\nb"
    assert lines.with_line_endings_of("a\nb", "no ending") == "a\nb"
