"""`agentls mcp-server`'s delegate tools say what a run cost in dollars: `cost_usd` in the
structured result (summed over a parallel group) and the dollars in the text a model reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client
from tests.rig.scripted_openai import ScriptedOpenAI, Text
from tests.test_mcp_server import text_of

from agentls.core.engine import EngineSettings, build_runtime
from agentls.mcp_server.server import Lineage, build_server

# gpt-4o-mini as OpenAI publishes it (openai.com/api/pricing, read 2026-12-01; unchanged since
# 2024-07-18), dollars per million tokens: input 0.15, cached input 0.075, output 0.60. A call of
# 100 prompt tokens (40 cached) and 20 output: (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 10^6.
CALL_COST = (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 1_000_000


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedOpenAI(models=("gpt-4o-mini", "my-llama")) as s:
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    return tmp_path


@contextlib.asynccontextmanager
async def connected(workspace: Path, scripted: ScriptedOpenAI) -> AsyncIterator[Client]:
    runtime = build_runtime(workspace, EngineSettings(model="gpt-4o-mini", base_url=scripted.url))
    try:
        async with Client(build_server(runtime, Lineage())) as client:
            yield client
    finally:
        await runtime.aclose()


def answer() -> Text:
    return Text("It adds.", prompt_tokens=100, cached_tokens=40, completion_tokens=20)


async def test_delegate_says_what_the_run_cost(workspace: Path, scripted: ScriptedOpenAI) -> None:
    scripted.enqueue(answer())

    async with connected(workspace, scripted) as client:
        result = await client.call_tool(
            "delegate", {"agent": "explain", "goal": "x", "file": "calc.py"}
        )

    assert result.structured_content is not None
    assert result.structured_content["cost_usd"] == pytest.approx(CALL_COST, rel=1e-9)
    assert "$0.000024" in text_of(result)


async def test_delegate_parallel_sums_the_costs(workspace: Path, scripted: ScriptedOpenAI) -> None:
    scripted.enqueue(answer(), answer())
    task = {"agent": "explain", "goal": "x", "file": "calc.py"}

    async with connected(workspace, scripted) as client:
        result = await client.call_tool("delegate_parallel", {"tasks": [task, task]})

    assert result.structured_content is not None
    assert result.structured_content["cost_usd"] == pytest.approx(2 * CALL_COST, rel=1e-9)
    assert "($0.000048) in all" in text_of(result)
