"""A small soak (100 runs, 16 in flight, ledger and audit trail on disk): every run ends with one
closing event, the ledger holds exactly what the runs used, and nothing stays reserved.

The full soak with its CPU and memory figures is tests/benchmarks/bench_soak.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.benchmarks.bench_soak import AGENT, APP, CALLS_PER_RUN, responder, soak
from tests.rig.scripted_openai import ScriptedOpenAI

from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.events import EventKind, RunStatus

RUNS = 100
IN_FLIGHT = 16


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(latency=0.01) as s:
        s.responder = responder()
        yield s


async def test_a_hundred_runs_keep_the_books_exact(server: ScriptedOpenAI, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(APP)
    runtime = build_runtime(
        tmp_path, EngineSettings(model="scripted-model", base_url=server.url, api_key="sk-test")
    )
    try:
        outcome = await soak(runtime, RUNS, IN_FLIGHT)
        assert runtime.audit is not None
        closing = runtime.audit.runs(agent=AGENT)
        calls = runtime.audit.query(agent=AGENT, kinds=[EventKind.MODEL_CALL])
        snapshot = runtime.budgeter.snapshot()
    finally:
        await runtime.aclose()

    assert outcome.problems == []
    assert len(closing) == RUNS and len({e.run_id for e in closing}) == RUNS
    assert {e.status for e in closing} == {RunStatus.FINISHED}
    assert len(calls) == RUNS * CALLS_PER_RUN
    assert snapshot.used == sum(e.usage.total for e in closing) > 0
    assert snapshot.reserved == 0
    assert len(server.requests) == RUNS * CALLS_PER_RUN
