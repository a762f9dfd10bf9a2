"""A misbehaving model server, seen through a whole run: rate limits and server errors (with
Retry-After), timeouts and a stream cut mid-way. Each run ends with a closing event and one clear
sentence; the ledger holds exactly what was spent and nothing stays reserved.

The backend's own handling of each fault (retry counts, error wording) is specified in
tests/test_llm_openai.py; malformed and unknown tool calls in tests/test_runtime.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.rig.runtimes import runtime_over, scripted_model
from tests.rig.scripted_openai import CutStream, Hang, ScriptedOpenAI, Status, Text

from agentls.core.definitions import AgentDefinition
from agentls.core.events import EventKind, RunStatus
from agentls.core.runtime import AgentRuntime, RunResult

EXPLAIN = AgentDefinition(name="explainer", description="Explains", instructions="Explain.")


@pytest.fixture
async def runtime(server: ScriptedOpenAI, tmp_path: Path) -> AsyncIterator[AgentRuntime]:
    """A runtime whose ledger and audit trail are real files, with 2 retries and a 1 s timeout."""
    model = scripted_model(server.url, max_retries=2, timeout=1.0)
    rt = runtime_over(tmp_path, model, [EXPLAIN], on_disk=True)
    yield rt
    await rt.aclose()


def assert_books_balance(runtime: AgentRuntime, result: RunResult) -> None:
    """The closing event is stored, and the ledger holds exactly the run's usage, nothing held."""
    assert runtime.audit is not None
    closing = runtime.audit.runs(run_id=result.run_id)
    assert len(closing) == 1 and closing[0].status is result.status
    assert closing[0].usage == result.usage
    snapshot = runtime.budgeter.snapshot()
    assert snapshot.used == result.usage.total
    assert snapshot.reserved == 0


def one_sentence(message: str | None) -> str:
    assert message and "\n" not in message and "Traceback" not in message
    return message


async def test_rate_limit_waits_the_retry_after_then_the_run_finishes(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(Status(429, retry_after=0.5), Text("all good"))
    started = time.monotonic()

    result = await runtime.delegate("explainer", "explain")

    assert result.status is RunStatus.FINISHED and result.text == "all good"
    assert time.monotonic() - started >= 0.5  # the server's Retry-After was honoured
    assert len(server.requests) == 2
    assert_books_balance(runtime, result)
    assert result.usage.total > 0 and not result.usage.estimated


async def test_server_error_then_success_bills_only_the_answered_call(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(Status(500, "overloaded", retry_after=0.05), Text("recovered"))

    result = await runtime.delegate("explainer", "explain")

    assert result.status is RunStatus.FINISHED
    assert_books_balance(runtime, result)
    assert runtime.audit is not None
    calls = runtime.audit.query(run_id=result.run_id, kinds=[EventKind.MODEL_CALL])
    assert len(calls) == 1


async def test_rate_limit_past_the_retries_fails_the_run_with_one_clear_sentence(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(*[Status(429, "slow down", retry_after=0.05)] * 3)

    result = await runtime.delegate("explainer", "explain")

    assert result.status is RunStatus.FAILED
    assert "429" in one_sentence(result.error)
    assert len(server.requests) == 3
    assert result.usage.total == 0
    assert_books_balance(runtime, result)


async def test_model_that_never_answers_times_out_and_holds_no_budget(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(*[Hang(30)] * 3)

    result = await runtime.delegate("explainer", "explain")

    assert result.status is RunStatus.FAILED
    assert "timeout" in one_sentence(result.error).lower()
    assert_books_balance(runtime, result)


async def test_stream_cut_midway_fails_clearly_and_keeps_what_was_streamed_in_the_ledger(
    server: ScriptedOpenAI, runtime: AgentRuntime
) -> None:
    server.enqueue(CutStream(Text("a long answer " * 50), after_chunks=5))

    result = await runtime.delegate("explainer", "explain")

    assert result.status is RunStatus.FAILED
    one_sentence(result.error)
    assert len(server.requests) == 1  # a half-delivered answer is not silently replayed
    # The provider may bill what it streamed before the cut: that spend is kept, marked estimated.
    assert result.usage.output_tokens > 0 and result.usage.estimated
    assert_books_balance(runtime, result)
