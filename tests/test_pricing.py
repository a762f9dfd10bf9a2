"""What a model call costs in dollars: a known model's published price (genai-prices, offline), the
user's `prices` setting for a model it does not know, and "unknown" (never a failure) for a
model priced by neither. The cost is on each model_call event, in the run's result, on the
closing line of `agentls run`, and summed over a run's calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.events import EventKind, RunEvent, Usage
from agentls.core.pricing import FREE, CallPrice, ModelPrice, PriceSource, call_cost, call_price
from agentls.core.settings import Settings, parse_settings
from agentls.core.settings_scope import restrict_untrusted

# gpt-4o-mini's price in dollars per million tokens, as OpenAI publishes it on its API pricing
# page (openai.com/api/pricing), unchanged since the model's launch on 2024-07-18 and as read
# there on 2026-12-01: input $0.15, cached input $0.075, output $0.60.
GPT_4O_MINI_INPUT = Decimal("0.15")
GPT_4O_MINI_CACHED_INPUT = Decimal("0.075")
GPT_4O_MINI_OUTPUT = Decimal("0.60")
MILLION = Decimal(1_000_000)

# One call's usage as the provider reports it: 100 prompt tokens of which 40 were cached, 20 out.
PROMPT, CACHED, COMPLETION = 100, 40, 20
# A self-hosted model's price in the user's settings file (dollars per million tokens).
LOCAL_PRICE = {"input": 2.0, "cachedInput": 1.0, "output": 4.0}


def gpt_4o_mini_cost(prompt: int, cached: int, completion: int) -> float:
    """By hand: uncached input, cached input and output, each at its published price."""
    dollars = (
        (prompt - cached) * GPT_4O_MINI_INPUT
        + cached * GPT_4O_MINI_CACHED_INPUT
        + completion * GPT_4O_MINI_OUTPUT
    ) / MILLION
    return float(dollars)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n", encoding="utf-8")
    return root


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    with ScriptedOpenAI(models=("gpt-4o-mini", "my-llama", "scripted-model")) as s:
        yield s


def user_settings(settings: dict[str, Any]) -> None:
    """Write the user's ~/.config/agentls/settings.json (HOME is the test's own)."""
    path = Path.home() / ".config" / "agentls" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings), encoding="utf-8")


def run_explain(server: ScriptedOpenAI, workspace: Path, model: str) -> int:
    argv = [
        "--workspace", str(workspace), "run", "explain", "--file", str(workspace / "a.py"),
        "--base-url", server.url, "--model", model, "--json",
    ]  # fmt: skip
    return main(argv)


def one_call(server: ScriptedOpenAI, calls: int = 1) -> None:
    for _ in range(calls):
        server.enqueue(
            Text(
                "It sets x.",
                prompt_tokens=PROMPT,
                cached_tokens=CACHED,
                completion_tokens=COMPLETION,
            )
        )


def events_of(workspace: Path) -> list[RunEvent]:
    with AuditStore.for_workspace(workspace) as audit:
        return audit.query()


def test_a_known_openai_model_call_costs_its_published_price(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_call(server)

    assert run_explain(server, workspace, "gpt-4o-mini") == 0

    expected = gpt_4o_mini_cost(PROMPT, CACHED, COMPLETION)  # $0.000024
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["cost_usd"] == pytest.approx(expected, rel=1e-9)
    [call] = [e for e in events_of(workspace) if e.kind is EventKind.MODEL_CALL]
    assert call.data["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert call.data["price_source"] == "genai-prices"
    assert call.data["priced_as"] == "gpt-4o-mini"
    # The run's closing line says what it cost.
    [closing] = [line for line in out.err.splitlines() if "finished in" in line]
    assert closing.endswith("· $0.000024")


def test_a_run_costs_the_sum_of_its_calls(server: ScriptedOpenAI, workspace: Path) -> None:
    one_call(server)
    assert run_explain(server, workspace, "gpt-4o-mini") == 0
    one_call(server)
    assert run_explain(server, workspace, "gpt-4o-mini") == 0

    events = events_of(workspace)
    closings = [e for e in events if e.is_terminal]
    assert [e.data["cost_usd"] for e in closings] == pytest.approx(
        [gpt_4o_mini_cost(PROMPT, CACHED, COMPLETION)] * 2, rel=1e-9
    )


def test_a_model_genai_prices_does_not_know_takes_the_price_of_the_prices_setting(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user_settings({"prices": {"my-llama": LOCAL_PRICE}})
    one_call(server)

    assert run_explain(server, workspace, "my-llama") == 0

    # 60 uncached input tokens at $2, 40 cached at $1 and 20 output at $4 per million.
    expected = (60 * 2.0 + 40 * 1.0 + 20 * 4.0) / 1_000_000
    assert json.loads(capsys.readouterr().out)["cost_usd"] == pytest.approx(expected, rel=1e-9)
    [call] = [e for e in events_of(workspace) if e.kind is EventKind.MODEL_CALL]
    assert call.data["price_source"] == "setting"
    assert call.data["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_the_prices_setting_wins_over_genai_prices(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negotiated rate, or a public model's name on the user's own server."""
    user_settings({"prices": {"gpt-4o-mini": {"input": 0, "output": 0}}})
    one_call(server)

    assert run_explain(server, workspace, "gpt-4o-mini") == 0

    assert json.loads(capsys.readouterr().out)["cost_usd"] == 0
    [call] = [e for e in events_of(workspace) if e.kind is EventKind.MODEL_CALL]
    assert call.data["price_source"] == "setting"


def test_a_model_with_no_price_has_an_unknown_cost_and_the_run_goes_on(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_call(server)

    assert run_explain(server, workspace, "scripted-model") == 0

    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["status"] == "finished" and result["cost_usd"] is None
    [call] = [e for e in events_of(workspace) if e.kind is EventKind.MODEL_CALL]
    assert call.data["cost_usd"] is None and call.data["price_source"] == "unknown"
    assert "cost unknown" in out.err


def test_a_bad_price_in_the_settings_file_is_named_and_left_out(
    server: ScriptedOpenAI, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user_settings({"prices": {"my-llama": {"input": -1, "output": 4}}})
    one_call(server)

    assert run_explain(server, workspace, "my-llama") == 0

    out = capsys.readouterr()
    assert json.loads(out.out)["cost_usd"] is None
    assert "settings.json: prices.my-llama.input" in out.err


def test_an_untrusted_workspace_cannot_set_prices() -> None:
    """A repository pricing its model at 0 would slip under a dollar limit."""
    user = Settings()
    merged, problems = parse_settings({"prices": {"gpt-4o": {"input": 0, "output": 0}}})
    assert problems == []

    restricted = restrict_untrusted(merged, user)

    assert restricted.settings.prices == {}
    assert "prices (user only)" in restricted.ignored


def test_a_price_names_its_problem() -> None:
    settings, problems = parse_settings(
        {"prices": {"ok": {"input": 1, "output": 2}, "bad": {"input": 1, "outptu": 2}}}
    )
    assert set(settings.prices) == {"ok"}
    assert any(p.startswith("setting agentls.prices.bad.") for p in problems), problems


def test_a_price_of_the_users_own_wins_over_the_embedded_models_nothing() -> None:
    """The embedded model costs nothing unless the user prices it (their machine's power, say)."""
    name = "smollm2-135m-instruct (embedded)"
    used = Usage(input_tokens=1_000_000, output_tokens=1_000_000)

    own = call_cost(used, (name,), {}, FREE)
    priced = call_cost(used, (name,), {name: ModelPrice(input=0.5, output=1.5)}, FREE)

    assert (own.usd, own.source) == (0, PriceSource.EMBEDDED)
    assert (priced.usd, priced.source) == (2.0, PriceSource.SETTING)
    assert call_price((name,), {}, FREE) == CallPrice(name, PriceSource.EMBEDDED, 0, 0, 0)


def test_a_server_that_names_its_model_like_the_embedded_one_is_not_free(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the embedded backend itself costs nothing: a name cannot slip under a dollar limit."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    name = "smollm2-135m-instruct (embedded)"
    assert main(["--workspace", str(workspace), "budget", "set", "$1"]) == 0
    capsys.readouterr()
    with ScriptedOpenAI(models=(name,)) as server:
        one_call(server)

        assert run_explain(server, workspace, name) != 0

        assert server.requests == []  # refused before the call
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "budget_exceeded" and "prices" in result["error"]
