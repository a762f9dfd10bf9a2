"""Model-chosen tool arguments are hostile: a catastrophic regex, a FIFO, a link out of the
workspace or a tool that never returns cannot hang a run, the event loop or a cancel."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.rig.scripted_openai import Hang, ScriptedOpenAI, Text, ToolCall

from agentls.core.budget import TokenBudgeter
from agentls.core.definitions import AgentDefinition, LoadedAgent, Mode
from agentls.core.events import RunStatus
from agentls.core.llm import ModelSettings, ToolSpec
from agentls.core.llm_openai import OpenAIChatModel
from agentls.core.registry import AgentRegistry
from agentls.core.runtime import AgentRuntime
from agentls.core.tools.base import Deadline, ToolResult, call_with_limit, off_loop
from agentls.core.tools.sandbox import WorkspaceSandbox
from agentls.core.tools.workspace import ListFiles, Search

T = TypeVar("T")
# A pathological line for backtracking engines: `(a+)+$` tries 2^40 ways to split it.
EVIL_LINE = "a" * 40 + "!"
# Generous: only a hang (the bug) comes near it.
HANG = 120.0

FINDER = AgentDefinition(
    name="finder",
    description="Finds",
    instructions="Find.",
    mode=Mode.TOOLS,
    tools=["read_file", "list_files", "search"],
    max_turns=4,
)


def finishes(make: Callable[[], Awaitable[T]], timeout: float = HANG) -> T:
    """Run a coroutine on its own loop in a daemon thread: a loop pinned by a hang cannot block
    the test from failing (the thread is abandoned)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True).start()
    assert done.wait(timeout), f"still running after {timeout} s: hung"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "evil.txt").write_text((EVIL_LINE + "\n") * 20)
    (root / "notes.txt").write_text("the needle is here\n")
    return root


def make_runtime(workspace: Path, server: ScriptedOpenAI, **kwargs: Any) -> AgentRuntime:
    model = OpenAIChatModel(ModelSettings(model="scripted-model", base_url=server.url, api_key="x"))
    registry = AgentRegistry()
    registry.add(LoadedAgent(FINDER, "builtin"))
    return AgentRuntime(workspace, registry, lambda _: model, TokenBudgeter(), audit=None, **kwargs)


def tool_reply(server: ScriptedOpenAI, index: int = 1) -> str:
    message = server.requests[index]["messages"][-1]
    assert message["role"] == "tool"
    return str(message["content"])


def test_a_catastrophic_regex_in_search_ends_the_run(
    workspace: Path, server: ScriptedOpenAI
) -> None:
    server.enqueue(ToolCall("search", {"query": "(a+)+$"}), Text("nothing found"))

    async def go() -> Any:
        return await make_runtime(workspace, server).delegate("finder", "find")

    result = finishes(go)
    assert result.status is RunStatus.FINISHED
    assert "(no matches)" in tool_reply(server)


def test_search_skips_a_fifo_and_finds_the_rest(workspace: Path, server: ScriptedOpenAI) -> None:
    os.mkfifo(workspace / "a-pipe.txt")
    server.enqueue(ToolCall("search", {"query": "needle"}), Text("found"))

    async def go() -> Any:
        return await make_runtime(workspace, server).delegate("finder", "find")

    result = finishes(go)
    assert result.status is RunStatus.FINISHED
    reply = tool_reply(server)
    assert "notes.txt:1: the needle is here" in reply
    assert "a-pipe" not in reply


def test_read_file_of_a_fifo_is_a_tool_error_not_a_hang(
    workspace: Path, server: ScriptedOpenAI
) -> None:
    os.mkfifo(workspace / "a-pipe.txt")
    server.enqueue(ToolCall("read_file", {"path": "a-pipe.txt"}), Text("could not read it"))

    async def go() -> Any:
        return await make_runtime(workspace, server).delegate("finder", "read")

    result = finishes(go)
    assert result.status is RunStatus.FINISHED
    assert "not a regular file" in tool_reply(server)


async def test_list_files_leaves_out_fifos(workspace: Path) -> None:
    os.mkfifo(workspace / "a-pipe.txt")
    listed = (await ListFiles(WorkspaceSandbox(workspace)).call({})).content
    assert "notes.txt" in listed
    assert "a-pipe" not in listed


async def test_search_does_not_follow_a_folder_link_out_of_the_workspace(
    workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("needle outside\n")
    (workspace / "escape").symlink_to(outside, target_is_directory=True)
    (workspace / "escape.txt").symlink_to(outside / "secret.txt")
    found = (await Search(WorkspaceSandbox(workspace)).call({"query": "needle"})).content
    assert "notes.txt" in found
    assert "outside" not in found


async def test_a_backreference_is_a_clear_tool_error(workspace: Path) -> None:
    result = await Search(WorkspaceSandbox(workspace)).call({"query": r"(a)\1"})
    assert result.is_error
    assert "backreferences" in result.content


async def test_search_results_are_bounded(workspace: Path) -> None:
    (workspace / "many.txt").write_text("hit\n" * 5000)
    result = await Search(WorkspaceSandbox(workspace)).call({"query": "hit"})
    assert result.content.count("many.txt:") == 100
    assert "stopped after 100" in result.content


async def test_search_skips_files_over_the_size_bound(workspace: Path) -> None:
    (workspace / "huge.txt").write_text("needle\n" + "x" * 1_100_000)
    found = (await Search(WorkspaceSandbox(workspace)).call({"query": "needle"})).content
    assert "notes.txt" in found
    assert "huge.txt" not in found


async def test_a_walk_past_its_time_limit_returns_what_it_found(workspace: Path) -> None:
    result = await Search(WorkspaceSandbox(workspace), walk_limit=0).call({"query": "needle"})
    assert not result.is_error
    assert "stopped after 0 s" in result.content


class _Stuck:
    """A tool whose work never returns until the test releases it."""

    read_only = True
    spec = ToolSpec(name="stuck", description="never returns", parameters={"type": "object"})

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        def work() -> ToolResult:
            self.entered.set()
            self.release.wait()
            return ToolResult("finally")

        return await off_loop(work, Deadline(3600))


async def test_a_tool_past_its_time_limit_gives_the_model_an_error() -> None:
    stuck = _Stuck()
    try:
        result = await call_with_limit(stuck, {}, seconds=0.05)
    finally:
        stuck.release.set()
    assert result.is_error
    assert "stuck did not finish within 0.05 s" in result.content


async def test_a_tool_s_own_time_limit_is_the_one_applied() -> None:
    stuck = _Stuck()
    stuck.call_time_limit = 0.05  # type: ignore[attr-defined]
    try:
        result = await call_with_limit(stuck, {})
    finally:
        stuck.release.set()
    assert "within 0.05 s" in result.content
    assert Search(WorkspaceSandbox(Path("."))).call_time_limit >= 30


async def test_cancel_wins_over_a_tool_that_never_returns(
    workspace: Path, server: ScriptedOpenAI
) -> None:
    stuck = _Stuck()

    async def extra(_: AgentDefinition) -> dict[str, Any]:
        return {"stuck": stuck}

    runtime = make_runtime(workspace, server, extra_tools=extra)
    server.enqueue(ToolCall("stuck", {}), Hang(60))
    try:
        task = asyncio.ensure_future(runtime.delegate("finder", "wait", run_id="r1"))
        await asyncio.to_thread(stuck.entered.wait)
        assert runtime.cancel("r1") == ["r1"]
        result = await task
    finally:
        stuck.release.set()
    assert result.status is RunStatus.CANCELLED


def test_the_event_loop_keeps_turning_while_search_walks(workspace: Path) -> None:
    for n in range(200):
        (workspace / f"f{n}.txt").write_text("x\n" * 500)
    ticks = 0

    async def go() -> ToolResult:
        nonlocal ticks
        search = asyncio.ensure_future(Search(WorkspaceSandbox(workspace)).call({"query": "y"}))
        while not search.done():
            ticks += 1
            await asyncio.sleep(0)
        return search.result()

    result = finishes(go)
    assert result.content == "(no matches)"
    assert ticks > 1  # the loop ran other work while the walk went on


async def test_search_counts_lines_as_editors_do(workspace: Path) -> None:
    (workspace / "ff.txt").write_text("x = 1\x0c\nb = 1\u2028c = 2\nneedle\n")
    found = (await Search(WorkspaceSandbox(workspace)).call({"query": "needle"})).content
    assert "ff.txt:3: needle" in found
