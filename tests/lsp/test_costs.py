"""What runs cost in dollars, as an editor sees it: `costUsd` in a delegation's result (and the sum
in a parallel group's), `costUsd`/`priceSource` on each model_call event, `cost=` in the log line
a generic client shows; the `prices` setting prices a model genai-prices does not know."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI, Text

# gpt-4o-mini as OpenAI publishes it (openai.com/api/pricing, read 2026-12-01; unchanged since
# 2024-07-18), dollars per million tokens: input 0.15, cached input 0.075, output 0.60. A call of
# 100 prompt tokens (40 cached) and 20 output: (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 10^6.
CALL_COST = (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 1_000_000


@pytest.fixture
def model() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(models=("gpt-4o-mini", "my-llama")) as server:
        yield server


def priced_answer() -> Text:
    return Text("It computes totals.", prompt_tokens=100, cached_tokens=40, completion_tokens=20)


@pytest.mark.parametrize("settings", [{"model": "gpt-4o-mini"}], indirect=True)
async def test_a_delegation_answers_with_its_cost(
    client: LanguageClient,
    workspace: Path,
    model: ScriptedOpenAI,
    editor: Editor,
    settings: dict[str, Any],
) -> None:
    model.enqueue(priced_answer())

    result = await execute(
        client, "agentls.delegate", {"agent": "explain", "uri": uri_of(workspace / "src/app.py")}
    )

    assert result["costUsd"] == pytest.approx(CALL_COST, rel=1e-9)
    run = result["runId"]
    call = await editor.wait_until(
        lambda: next((e for e in editor.run_events(run) if e["kind"] == "model_call"), None)
    )
    assert call["data"]["costUsd"] == pytest.approx(CALL_COST, rel=1e-9)
    assert call["data"]["priceSource"] == "genai-prices"
    line = await editor.wait_until(
        lambda: next(
            (
                m.message
                for m in client.log_messages
                if "model_call" in m.message and f"run={run[:8]}" in m.message
            ),
            None,
        )
    )
    assert "cost=$0.000024" in line


@pytest.mark.parametrize("settings", [{"model": "gpt-4o-mini"}], indirect=True)
async def test_a_parallel_group_answers_with_the_sum_of_its_costs(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    model.enqueue(priced_answer(), priced_answer())
    uri = uri_of(workspace / "src/app.py")

    result = await execute(
        client,
        "agentls.delegateParallel",
        {"tasks": [{"agent": "explain", "uri": uri}, {"agent": "review", "uri": uri}]},
    )

    assert [r["costUsd"] for r in result["results"]] == pytest.approx([CALL_COST] * 2, rel=1e-9)
    assert result["costUsd"] == pytest.approx(2 * CALL_COST, rel=1e-9)


@pytest.mark.parametrize(
    "settings",
    [{"model": "my-llama", "prices": {"my-llama": {"input": 2, "cachedInput": 1, "output": 4}}}],
    indirect=True,
)
async def test_the_prices_setting_prices_a_self_hosted_model(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    model.enqueue(priced_answer())

    result = await execute(
        client, "agentls.delegate", {"agent": "explain", "uri": uri_of(workspace / "src/app.py")}
    )

    assert result["costUsd"] == pytest.approx((60 * 2 + 40 * 1 + 20 * 4) / 1_000_000, rel=1e-9)


@pytest.mark.parametrize("settings", [{"model": "my-llama"}], indirect=True)
async def test_a_model_without_a_price_has_a_null_cost(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, settings: dict[str, Any]
) -> None:
    model.enqueue(priced_answer())

    result = await execute(
        client, "agentls.delegate", {"agent": "explain", "uri": uri_of(workspace / "src/app.py")}
    )

    assert result["status"] == "finished"
    assert result["costUsd"] is None


async def test_the_budget_snapshot_lists_a_users_monthly_dollar_limit(
    client: LanguageClient, workspace: Path
) -> None:
    from agentls.core.budget import TokenBudgeter
    from agentls.core.budget_limits import LimitKey, Period, Unit, user_base

    with TokenBudgeter.for_workspace(workspace) as ledger:  # as `agentls budget set` writes it
        ledger.set_limit_of(LimitKey(user_base("alice"), Unit.USD, Period.MONTH), 50 * 10**9)

    snapshot = await execute(client, "agentls.budget", {"action": "get"})

    [limit] = snapshot["limits"]
    assert (limit["appliesTo"], limit["name"], limit["unit"]) == ("user", "alice", "usd")
    assert (limit["period"], limit["limit"], limit["used"]) == ("month", 50.0, 0.0)
