"""Edits are exact: `agentls run --apply` and the LSP WorkspaceEdit change only the edited range.

Line endings (CRLF, lone CR), a missing final newline, non-ASCII text and the file's mode survive;
a file that changed since the run read it is not overwritten.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.cli.edits import applied, write_edits
from agentls.core.lines import split_lines
from agentls.core.target import (
    Position,
    ProposedEdit,
    TextRange,
    position_of,
    text_sha256,
)
from agentls.core.tools.sandbox import WorkspaceSandbox
from agentls.core.tools.workspace import ProposeEdit, ReadFile
from agentls.lsp import wire

CRLF_SOURCE = (
    "def add(a, b):\r\n    return a + b\r\n\r\n\r\ndef sub(a, b):\r\n    return a - b\r\n\r\n# end"
)
NEW_SUB = "def sub(a, b):\n    return -(b - a)\n"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedOpenAI() as s:
        yield s


def cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def run_refactor(server: ScriptedOpenAI, path: Path, *extra: str) -> int:
    return cli(
        "--workspace",
        str(path.parent),
        "run",
        "refactor",
        "--file",
        str(path),
        "--base-url",
        server.url,
        "--model",
        "scripted-model",
        "--apply",
        *extra,
    )


def test_apply_keeps_crlf_the_missing_final_newline_and_the_mode(
    server: ScriptedOpenAI, tmp_path: Path
) -> None:
    script = tmp_path / "calc.py"
    script.write_bytes(CRLF_SOURCE.encode())
    script.chmod(0o755)
    server.enqueue(Text(f"```python\n{NEW_SUB}```"))

    assert run_refactor(server, script, "--lines", "5-6") == 0

    expected = CRLF_SOURCE.replace("return a - b", "return -(b - a)")
    assert script.read_bytes() == expected.encode()
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir() if "agentls-tmp" in p.name] == []


def test_apply_keeps_non_ascii_text_and_lone_cr_lines(
    server: ScriptedOpenAI, tmp_path: Path
) -> None:
    source = "# café ☕ 😀\rx = 'ü'\ry = 2\r"
    path = tmp_path / "mac.py"
    path.write_bytes(source.encode())
    server.enqueue(Text("```python\ny = 3\n```"))

    assert run_refactor(server, path, "--lines", "3-3") == 0

    assert path.read_bytes() == "# café ☕ 😀\rx = 'ü'\ry = 3\r".encode()


def test_apply_refuses_when_the_file_changed_since_the_run_read_it(
    server: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "calc.py"
    path.write_bytes(CRLF_SOURCE.encode())
    newer = CRLF_SOURCE + "\r\n# typed by the user while the agent ran\r\n"

    def user_types_then_model_answers(body: dict[str, Any]) -> Text:
        path.write_bytes(newer.encode())  # the run has read the file: its text is in the prompt
        return Text(f"```python\n{NEW_SUB}```")

    server.responder = user_types_then_model_answers

    assert run_refactor(server, path, "--lines", "5-6") == 1

    assert path.read_bytes() == newer.encode()
    err = capsys.readouterr().err
    assert "calc.py changed since the run read it" in err


def test_write_edits_refuses_a_tool_edit_whose_base_changed(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one\ntwo\n")
    edit = ProposedEdit(
        path="a.txt",
        range=TextRange.of(1, 0, 1, 3),
        new_text="TWO",
        agent="t",
        base_sha256=text_sha256("one\ntwo\n"),
    )
    path.write_text("one\ntwo\nthree\n")
    [(ok, reason)] = write_edits(tmp_path, [edit])
    assert not ok and reason is not None and "a.txt changed since the run read it" in reason
    assert path.read_text() == "one\ntwo\nthree\n"


async def test_propose_edit_after_a_form_feed_targets_the_right_line(tmp_path: Path) -> None:
    # The reproduction: an edit to `c = 2` overwrote `b = 1`.
    text = "x = 1\x0c\nb = 1\nc = 2\n"
    (tmp_path / "m.py").write_bytes(text.encode())
    tool = ProposeEdit(WorkspaceSandbox(tmp_path), "tools-agent")
    result = await tool.call({"path": "m.py", "old_text": "c = 2", "new_text": "c = 3"})
    [edit] = result.edits
    assert edit.range == TextRange.of(2, 0, 2, 5)
    assert write_edits(tmp_path, [edit]) == [(True, None)]
    assert (tmp_path / "m.py").read_bytes() == b"x = 1\x0c\nb = 1\nc = 3\n"


async def test_propose_edit_on_a_crlf_file_matches_lf_old_text_and_keeps_crlf(
    tmp_path: Path,
) -> None:
    (tmp_path / "w.py").write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    tool = ProposeEdit(WorkspaceSandbox(tmp_path), "tools-agent")
    result = await tool.call(
        {"path": "w.py", "old_text": "a = 1\nb = 2", "new_text": "a = 1\nb = 20"}
    )
    assert not result.is_error, result.content
    assert write_edits(tmp_path, result.edits) == [(True, None)]
    assert (tmp_path / "w.py").read_bytes() == b"a = 1\r\nb = 20\r\nc = 3\r\n"


async def test_read_file_numbers_lines_as_the_editor_does(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_bytes("x = 1\x0c\nb = 1\u2028 tail\r\nc = 2\rd = 4".encode())
    result = await ReadFile(WorkspaceSandbox(tmp_path)).call({"path": "f.py", "start_line": 3})
    assert result.content.splitlines() == ["    3  c = 2", "    4  d = 4"]


# --- properties: a proposed edit changes exactly its range -----------------------------------

PIECES = st.sampled_from(
    ["a", "z", " ", "é", "中", "😀", "\U0001f9ea", "\x0c", "\x85", "\u2028", "\x1c", "\x0b", "\t"]
)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])
LINE = st.lists(PIECES, max_size=6).map("".join)
TEXT = st.tuples(st.lists(st.tuples(LINE, ENDINGS), max_size=6), LINE).map(
    lambda t: "".join(a + b for a, b in t[0]) + t[1]
)
NEW_TEXT = st.lists(st.one_of(PIECES, ENDINGS), max_size=6).map("".join)


@st.composite
def text_and_range(draw: st.DrawFn) -> tuple[str, int, int]:
    """A text and a range of it given as code-point offsets at position boundaries."""
    text = draw(TEXT)
    # Offsets a position can name: anything but the middle of a CRLF.
    boundaries = [
        i for i in range(len(text) + 1) if not (0 < i < len(text) and text[i - 1 : i + 1] == "\r\n")
    ]
    a = draw(st.sampled_from(boundaries))
    b = draw(st.sampled_from(boundaries))
    return text, min(a, b), max(a, b)


def _edit(text: str, start: int, end: int, new: str) -> ProposedEdit:
    rng = TextRange(start=position_of(text, start), end=position_of(text, end))
    return ProposedEdit(path="f.txt", range=rng, new_text=new, agent="prop")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=text_and_range(), new=NEW_TEXT)
def test_cli_apply_changes_exactly_the_range(
    case: tuple[str, int, int], new: str, tmp_path: Path
) -> None:
    text, start, end = case
    path = tmp_path / "f.txt"
    path.write_bytes(text.encode())
    edit = _edit(text, start, end, new)
    assert write_edits(tmp_path, [edit], {"f.txt": text_sha256(text)}) == [(True, None)]
    assert path.read_bytes() == (text[:start] + new + text[end:]).encode()


def _reference_offset(text: str, pos: types.Position) -> int:
    """LSP's definition, written independently: lines end at \\n, \\r\\n or \\r; UTF-16 units."""
    line_starts = [0]
    i = 0
    while i < len(text):
        if text[i] == "\r" and text[i + 1 : i + 2] == "\n":
            i += 2
            line_starts.append(i)
            continue
        if text[i] in "\r\n":
            line_starts.append(i + 1)
        i += 1
    if pos.line >= len(line_starts):
        return len(text)
    offset, units = line_starts[pos.line], 0
    while offset < len(text) and text[offset] not in "\r\n" and units < pos.character:
        units += len(text[offset].encode("utf-16-le")) // 2
        offset += 1
    return offset


@settings(max_examples=200, deadline=None)
@given(case=text_and_range(), new=NEW_TEXT)
def test_lsp_workspace_edit_changes_exactly_the_range(case: tuple[str, int, int], new: str) -> None:
    text, start, end = case
    text_edit = wire.text_edit(text, _edit(text, start, end, new), "utf-16")
    a = _reference_offset(text, text_edit.range.start)
    b = _reference_offset(text, text_edit.range.end)
    assert text[:a] + text_edit.new_text + text[b:] == text[:start] + new + text[end:]


@settings(max_examples=200, deadline=None)
@given(case=text_and_range())
def test_lsp_ranges_from_the_client_select_exactly_that_text(case: tuple[str, int, int]) -> None:
    text, start, end = case
    rng = _edit(text, start, end, "").range
    client = wire.text_edit(text, _edit(text, start, end, ""), "utf-16").range
    back = TextRange(
        start=wire.engine_position(text, client.start), end=wire.engine_position(text, client.end)
    )
    assert back == rng


def test_lines_of_a_diff_are_lsp_lines() -> None:
    assert applied("a\x0cb\nc", [_edit("a\x0cb\nc", 4, 5, "C")]) == "a\x0cb\nC"
    assert split_lines("a\x0cb\nc") == ["a\x0cb\n", "c"]
    assert position_of("a\x0cb\nc", 4) == Position(line=1, character=0)


def test_a_new_file_gets_the_default_mode(tmp_path: Path) -> None:
    edit = ProposedEdit(
        path="new.sh",
        range=TextRange.of(0, 0, 0, 0),
        new_text="echo\n",
        agent="t",
        creates_file=True,
    )
    assert write_edits(tmp_path, [edit]) == [(True, None)]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.sh").stat().st_mode) == 0o666 & ~mask


def test_apply_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("one\n")
    (tmp_path / "link.txt").symlink_to("real.txt")
    edit = ProposedEdit(path="link.txt", range=TextRange.of(0, 0, 0, 3), new_text="ONE", agent="t")
    assert write_edits(tmp_path, [edit]) == [(True, None)]
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_text() == "ONE\n"
