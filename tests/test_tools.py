"""The built-in workspace tools and the sandbox that confines them to the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentls.core.target import apply_edit
from agentls.core.tools.base import ToolResult, summarize_arguments, truncate
from agentls.core.tools.sandbox import SandboxError, WorkspaceSandbox
from agentls.core.tools.workspace import ListFiles, ProposeEdit, ReadFile, Search, workspace_tools

NUMBERED = "".join(f"line {n}\n" for n in range(1, 11))


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    (root / "numbers.txt").write_text(NUMBERED, encoding="utf-8")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def main():\n    return 'hello'\n", encoding="utf-8")
    (root / "src" / "twice.py").write_text("x = 1\nx = 1\n", encoding="utf-8")
    for skipped in (".git", "node_modules", ".venv"):
        (root / skipped).mkdir()
        (root / skipped / "hidden.py").write_text("def main(): pass\n", encoding="utf-8")
    return root


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.txt").write_text("the password is hunter2\n", encoding="utf-8")
    return folder


@pytest.fixture
def sandbox(workspace: Path) -> WorkspaceSandbox:
    return WorkspaceSandbox(workspace)


def refused(result: ToolResult) -> str:
    assert result.is_error, result.content
    assert result.edits == []
    return result.content


# --- the sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../secret.txt", "src/../../secret.txt", "src\\..\\..\\x"])
def test_dot_dot_is_refused(sandbox: WorkspaceSandbox, path: str) -> None:
    with pytest.raises(SandboxError) as info:
        sandbox.resolve(path, must_exist=False)
    assert "'..'" in str(info.value)


@pytest.mark.parametrize("path", ["/etc/passwd", "~/.ssh/id_rsa", "~", "C:\\Windows\\win.ini"])
def test_absolute_and_home_paths_are_refused(sandbox: WorkspaceSandbox, path: str) -> None:
    with pytest.raises(SandboxError) as info:
        sandbox.resolve(path, must_exist=False)
    assert repr(path) in str(info.value)
    assert "relative" in str(info.value)


def test_symlink_pointing_outside_is_refused(
    sandbox: WorkspaceSandbox, workspace: Path, outside: Path
) -> None:
    (workspace / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(SandboxError) as info:
        sandbox.resolve("link.txt")
    assert "outside the workspace" in str(info.value)


def test_symlinked_folder_pointing_outside_is_refused(
    sandbox: WorkspaceSandbox, workspace: Path, outside: Path
) -> None:
    (workspace / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SandboxError):
        sandbox.resolve("linked/secret.txt")


def test_symlink_inside_the_workspace_is_allowed(
    sandbox: WorkspaceSandbox, workspace: Path
) -> None:
    (workspace / "alias.py").symlink_to(workspace / "src" / "app.py")
    assert sandbox.resolve("alias.py") == (workspace / "src" / "app.py").resolve()


@pytest.mark.parametrize("path", ["", "   "])
def test_empty_path_is_refused(sandbox: WorkspaceSandbox, path: str) -> None:
    with pytest.raises(SandboxError):
        sandbox.resolve(path)


def test_missing_path_is_refused_when_it_must_exist(sandbox: WorkspaceSandbox) -> None:
    with pytest.raises(SandboxError) as info:
        sandbox.resolve("nope.py")
    assert "does not exist" in str(info.value)


def test_relative_form_of_a_path_inside(sandbox: WorkspaceSandbox, workspace: Path) -> None:
    assert sandbox.relative(workspace / "src" / "app.py") == "src/app.py"
    assert sandbox.contains(workspace / "src")
    assert not sandbox.contains(workspace.parent)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("read_file", {"path": "../outside/secret.txt"}),
        ("read_file", {"path": "/etc/passwd"}),
        ("read_file", {"path": "~/.bashrc"}),
        ("list_files", {"path": ".."}),
        ("list_files", {"path": "/"}),
        ("search", {"query": "password", "path": ".."}),
        ("search", {"query": "password", "path": "/tmp"}),
        ("propose_edit", {"path": "../evil.py", "old_text": "", "new_text": "x"}),
        ("propose_edit", {"path": "/tmp/evil.py", "old_text": "", "new_text": "x"}),
    ],
)
async def test_every_tool_refuses_paths_outside(
    sandbox: WorkspaceSandbox, tool: str, arguments: dict[str, str]
) -> None:
    result = await workspace_tools(sandbox, "agent")[tool].call(arguments)
    message = refused(result)
    assert "hunter2" not in message


async def test_read_file_refuses_a_symlink_outside(
    sandbox: WorkspaceSandbox, workspace: Path, outside: Path
) -> None:
    (workspace / "link.txt").symlink_to(outside / "secret.txt")
    message = refused(await ReadFile(sandbox).call({"path": "link.txt"}))
    assert "hunter2" not in message
    assert "outside" in message


async def test_list_and_search_skip_symlinks_outside(
    sandbox: WorkspaceSandbox, workspace: Path, outside: Path
) -> None:
    (workspace / "link.txt").symlink_to(outside / "secret.txt")
    (workspace / "linked").symlink_to(outside, target_is_directory=True)
    listed = await ListFiles(sandbox).call({})
    assert "link.txt" not in listed.content
    assert "secret" not in listed.content
    found = await Search(sandbox).call({"query": "hunter2"})
    assert "hunter2" not in found.content


# --- read_file ---------------------------------------------------------------------------------


async def test_read_file_numbers_every_line(sandbox: WorkspaceSandbox) -> None:
    result = await ReadFile(sandbox).call({"path": "numbers.txt"})
    assert not result.is_error
    lines = result.content.splitlines()
    assert len(lines) == 10
    assert lines[0].split() == ["1", "line", "1"]
    assert lines[9].split() == ["10", "line", "10"]


async def test_read_file_gives_the_requested_range(sandbox: WorkspaceSandbox) -> None:
    result = await ReadFile(sandbox).call({"path": "numbers.txt", "start_line": 3, "end_line": 5})
    assert [line.split()[0] for line in result.content.splitlines()] == ["3", "4", "5"]
    assert "line 3" in result.content and "line 6" not in result.content


async def test_read_file_range_past_the_end_is_clamped(sandbox: WorkspaceSandbox) -> None:
    result = await ReadFile(sandbox).call({"path": "numbers.txt", "start_line": 9, "end_line": 50})
    assert [line.split()[0] for line in result.content.splitlines()] == ["9", "10"]


async def test_read_file_start_past_the_end_says_so(sandbox: WorkspaceSandbox) -> None:
    message = refused(await ReadFile(sandbox).call({"path": "numbers.txt", "start_line": 40}))
    assert "10" in message  # the real length is named


async def test_read_file_with_non_numeric_lines_is_an_error(sandbox: WorkspaceSandbox) -> None:
    message = refused(await ReadFile(sandbox).call({"path": "numbers.txt", "start_line": "ten"}))
    assert "start_line" in message


async def test_read_file_of_an_empty_file_says_empty(
    sandbox: WorkspaceSandbox, workspace: Path
) -> None:
    (workspace / "empty.txt").write_text("")
    result = await ReadFile(sandbox).call({"path": "empty.txt"})
    assert not result.is_error
    assert "empty" in result.content


async def test_read_file_of_a_folder_is_an_error(sandbox: WorkspaceSandbox) -> None:
    message = refused(await ReadFile(sandbox).call({"path": "src"}))
    assert "list_files" in message


async def test_read_file_of_a_binary_file_is_an_error(
    sandbox: WorkspaceSandbox, workspace: Path
) -> None:
    (workspace / "blob.bin").write_bytes(b"\xff\xfe\x00\x81" * 10)
    refused(await ReadFile(sandbox).call({"path": "blob.bin"}))


async def test_read_file_of_a_missing_file_is_an_error(sandbox: WorkspaceSandbox) -> None:
    message = refused(await ReadFile(sandbox).call({"path": "nope.py"}))
    assert "nope.py" in message


async def test_read_file_without_a_path_is_an_error(sandbox: WorkspaceSandbox) -> None:
    refused(await ReadFile(sandbox).call({}))


# --- list_files --------------------------------------------------------------------------------


async def test_list_files_lists_workspace_relative_paths(sandbox: WorkspaceSandbox) -> None:
    result = await ListFiles(sandbox).call({})
    assert set(result.content.splitlines()) == {"numbers.txt", "src/app.py", "src/twice.py"}


async def test_list_files_skips_git_node_modules_and_venv(sandbox: WorkspaceSandbox) -> None:
    listed = (await ListFiles(sandbox).call({"path": "."})).content
    for skipped in (".git", "node_modules", ".venv"):
        assert skipped not in listed


async def test_list_files_filters_by_glob_in_a_folder(sandbox: WorkspaceSandbox) -> None:
    result = await ListFiles(sandbox).call({"path": "src", "pattern": "app*"})
    assert result.content.splitlines() == ["src/app.py"]


async def test_list_files_of_a_file_is_an_error(sandbox: WorkspaceSandbox) -> None:
    refused(await ListFiles(sandbox).call({"path": "numbers.txt"}))


async def test_list_files_with_no_match_says_so(sandbox: WorkspaceSandbox) -> None:
    result = await ListFiles(sandbox).call({"pattern": "*.rs"})
    assert not result.is_error
    assert "no files" in result.content


# --- search ------------------------------------------------------------------------------------


async def test_search_gives_path_line_and_text(sandbox: WorkspaceSandbox) -> None:
    result = await Search(sandbox).call({"query": r"return '\w+'"})
    assert result.content.splitlines() == ["src/app.py:2: return 'hello'"]


async def test_search_skips_git_node_modules_and_venv(sandbox: WorkspaceSandbox) -> None:
    result = await Search(sandbox).call({"query": "def main"})
    assert result.content.splitlines() == ["src/app.py:1: def main():"]


async def test_search_with_an_invalid_regex_is_an_error(sandbox: WorkspaceSandbox) -> None:
    message = refused(await Search(sandbox).call({"query": "def (unclosed"}))
    assert "def (unclosed" in message
    assert "regular expression" in message


async def test_search_with_no_match_says_so(sandbox: WorkspaceSandbox) -> None:
    result = await Search(sandbox).call({"query": "zebra"})
    assert not result.is_error
    assert "no matches" in result.content


async def test_search_without_a_query_is_an_error(sandbox: WorkspaceSandbox) -> None:
    refused(await Search(sandbox).call({}))


# --- propose_edit ------------------------------------------------------------------------------


async def test_propose_edit_covers_exactly_the_old_text(
    sandbox: WorkspaceSandbox, workspace: Path
) -> None:
    before = (workspace / "src" / "app.py").read_text()
    result = await ProposeEdit(sandbox, "fixer").call(
        {"path": "src/app.py", "old_text": "'hello'", "new_text": "'bye'", "description": "Bye"}
    )
    assert not result.is_error
    (edit,) = result.edits
    assert edit.path == "src/app.py"
    assert edit.agent == "fixer"
    assert edit.description == "Bye"
    assert not edit.creates_file
    assert apply_edit(before, edit.range, edit.new_text) == before.replace("'hello'", "'bye'")


async def test_propose_edit_never_writes(sandbox: WorkspaceSandbox, workspace: Path) -> None:
    before = (workspace / "src" / "app.py").read_text()
    await ProposeEdit(sandbox, "fixer").call(
        {"path": "src/app.py", "old_text": "'hello'", "new_text": "'bye'"}
    )
    await ProposeEdit(sandbox, "fixer").call({"path": "new.py", "old_text": "", "new_text": "x"})
    assert (workspace / "src" / "app.py").read_text() == before
    assert not (workspace / "new.py").exists()


async def test_propose_edit_refuses_text_that_occurs_twice(sandbox: WorkspaceSandbox) -> None:
    message = refused(
        await ProposeEdit(sandbox, "fixer").call(
            {"path": "src/twice.py", "old_text": "x = 1", "new_text": "x = 2"}
        )
    )
    assert "2" in message and "exactly once" in message


async def test_propose_edit_refuses_text_that_does_not_occur(sandbox: WorkspaceSandbox) -> None:
    message = refused(
        await ProposeEdit(sandbox, "fixer").call(
            {"path": "src/app.py", "old_text": "goodbye", "new_text": "x"}
        )
    )
    assert "0" in message and "exactly once" in message


async def test_propose_edit_creates_a_new_file_with_empty_old_text(
    sandbox: WorkspaceSandbox,
) -> None:
    result = await ProposeEdit(sandbox, "fixer").call(
        {"path": "tests/test_app.py", "old_text": "", "new_text": "def test(): pass\n"}
    )
    (edit,) = result.edits
    assert edit.creates_file
    assert edit.path == "tests/test_app.py"
    assert edit.new_text == "def test(): pass\n"
    assert edit.range.is_empty()


async def test_propose_edit_refuses_old_text_for_a_missing_file(sandbox: WorkspaceSandbox) -> None:
    message = refused(
        await ProposeEdit(sandbox, "fixer").call(
            {"path": "new.py", "old_text": "something", "new_text": "x"}
        )
    )
    assert "empty old_text" in message


async def test_propose_edit_with_empty_old_text_on_an_existing_file_is_refused(
    sandbox: WorkspaceSandbox,
) -> None:
    message = refused(
        await ProposeEdit(sandbox, "fixer").call(
            {"path": "src/app.py", "old_text": "", "new_text": "x"}
        )
    )
    assert "src/app.py" in message
    assert "exists" in message


async def test_propose_edit_needs_its_arguments(sandbox: WorkspaceSandbox) -> None:
    refused(await ProposeEdit(sandbox, "fixer").call({"path": "src/app.py", "new_text": "x"}))


async def test_propose_edit_on_a_folder_is_an_error(sandbox: WorkspaceSandbox) -> None:
    refused(
        await ProposeEdit(sandbox, "fixer").call({"path": "src", "old_text": "a", "new_text": "b"})
    )


# --- the tool set and helpers ------------------------------------------------------------------


def test_workspace_tools_are_the_four_builtins(sandbox: WorkspaceSandbox) -> None:
    tools = workspace_tools(sandbox, "agent")
    assert set(tools) == {"read_file", "list_files", "search", "propose_edit"}
    assert all(t.spec.name == name for name, t in tools.items())
    assert {name for name, t in tools.items() if t.read_only} == {
        "read_file",
        "list_files",
        "search",
    }


def test_tool_schemas_are_objects_with_their_required_arguments(sandbox: WorkspaceSandbox) -> None:
    for tool in workspace_tools(sandbox, "agent").values():
        params = tool.spec.parameters
        assert params["type"] == "object"
        assert set(params.get("required", [])) <= set(params["properties"])


def test_long_results_are_truncated_with_a_note() -> None:
    text = truncate("x" * 50, limit=10)
    assert text.startswith("x" * 10)
    assert "40 more characters" in text


def test_argument_summary_is_one_short_line() -> None:
    line = summarize_arguments({"path": "a.py", "new_text": "line\n" * 100, "start_line": 3})
    assert "\n" not in line
    assert len(line) <= 160
    assert "path='a.py'" in line
    assert "start_line=3" in line
