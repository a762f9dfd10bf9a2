"""Numbers and texts past agentls' bounds, from every front end that takes them: a budget of 2^63
tokens, a goal of a million characters. Each is refused with a sentence that names the argument
and its bound, before anything is tokenized or sent to the model."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp_types import CallToolResult, TextContent
from tests.rig.scripted_openai import ScriptedOpenAI

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.bounds import MAX_GOAL_CHARS, MAX_TOKENS
from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.events import RunStatus
from agentls.mcp_server.server import Lineage, build_server

CaptureFixture = pytest.CaptureFixture[str]
HUGE_GOAL = "explain " * 125_000  # 1,000,000 characters
MODEL = "gpt-4o-mini"


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    # gpt-4o-mini: agentls counts its prompts with the real tokenizer, which a huge text stalls.
    with ScriptedOpenAI(models=(MODEL,)) as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    return root


@contextlib.asynccontextmanager
async def mcp_client(workspace: Path, scripted: ScriptedOpenAI) -> AsyncIterator[Client]:
    runtime = build_runtime(workspace, EngineSettings(model=MODEL, base_url=scripted.url))
    try:
        async with Client(build_server(runtime, Lineage())) as client:
            yield client
    finally:
        await runtime.aclose()


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.mark.parametrize("budget", [2**63, 2**63 - 1, MAX_TOKENS + 1])
async def test_an_mcp_delegate_budget_past_the_bound_is_an_error_naming_it(
    workspace: Path, scripted: ScriptedOpenAI, budget: int
) -> None:
    arguments = {"agent": "explain", "goal": "x", "file": "calc.py", "budget": budget}
    async with mcp_client(workspace, scripted) as client:
        result = await client.call_tool("delegate", arguments)
        still_serving = await client.call_tool("list_agents", {})

    assert result.is_error is True
    text = text_of(result)
    assert "budget" in text and str(MAX_TOKENS) in text.replace(",", "")
    assert "internal error" not in text.lower() and "OverflowError" not in text
    assert not scripted.requests
    assert still_serving.is_error is False


async def test_an_mcp_delegate_goal_of_a_million_characters_is_refused_naming_it(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    arguments = {"agent": "explain", "goal": HUGE_GOAL, "file": "calc.py"}
    async with mcp_client(workspace, scripted) as client:
        result = await client.call_tool("delegate", arguments)

    assert result.is_error is True
    text = text_of(result)
    assert "the goal is 1,000,000 characters" in text and f"{MAX_GOAL_CHARS:,}" in text
    assert not scripted.requests


def test_a_cli_goal_of_a_million_characters_is_refused_naming_it(
    workspace: Path, scripted: ScriptedOpenAI, capsys: CaptureFixture
) -> None:
    argv = [
        "--workspace", str(workspace), "run", "explain", "--file", str(workspace / "calc.py"),
        "--goal", HUGE_GOAL, "--base-url", scripted.url, "--model", MODEL, "--json",
    ]  # fmt: skip

    assert main(argv) == 1

    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "failed"
    assert "the goal is 1,000,000 characters" in result["error"]
    assert f"more than the {MAX_GOAL_CHARS:,}" in result["error"]
    assert not scripted.requests
    with AuditStore.for_workspace(workspace) as audit:
        [failed] = audit.query(limit=10)
    assert failed.status is RunStatus.FAILED and len(failed.goal) < 1000  # an excerpt is kept


async def test_an_acp_prompt_of_a_million_characters_is_refused_naming_the_goal(
    scripted: ScriptedOpenAI, tmp_path: Path
) -> None:
    from tests.test_acp_sdk import Panel, prompt_once

    import acp

    workspace = tmp_path / "panel"
    workspace.mkdir()
    panel = Panel()
    response = await prompt_once(
        panel,
        scripted,
        workspace,
        acp.text_block("/explain " + HUGE_GOAL),
        options=("--model", MODEL),
    )

    assert response.stop_reason == "end_turn"  # the turn ends with the reason, the panel goes on
    assert "the goal is 999,999 characters" in panel.text()  # the command's name is not in it
    assert f"more than the {MAX_GOAL_CHARS:,}" in panel.text()
    assert not scripted.requests


async def test_an_acp_budget_past_the_bound_is_refused_naming_it(
    scripted: ScriptedOpenAI, tmp_path: Path
) -> None:
    from tests.test_acp_sdk import Panel, prompt_once

    import acp

    workspace = tmp_path / "panel"
    workspace.mkdir()
    panel = Panel()
    await prompt_once(panel, scripted, workspace, acp.text_block("/budget set 1e30"))

    assert f"more than the largest limit, {MAX_TOKENS:,} tokens" in panel.text()
    assert "internal error" not in panel.text()


def test_a_goal_the_tokenizer_refuses_is_bounded_by_its_bytes(
    workspace: Path, scripted: ScriptedOpenAI, capsys: CaptureFixture
) -> None:
    # Under the goal's bound, but 600,000 tokens: more than the tokenizer counts at once.
    goal = "\U00013000" * 150_000
    argv = [
        "--workspace", str(workspace), "run", "explain", "--file", str(workspace / "calc.py"),
        "--goal", goal, "--base-url", scripted.url, "--model", MODEL, "--json",
    ]  # fmt: skip

    assert main(argv) == 1

    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "budget_exceeded"  # its UTF-8 bytes bound it: far over 8,000
    assert "internal error" not in result["error"]
    assert not scripted.requests
