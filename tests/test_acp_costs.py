"""`agentls acp`: each `usage_update` carries the session's cost so far in dollars (ACP's `cost`,
`{amount, currency}`), as the official ACP TypeScript SDK's client receives it; none once a model
without a price has been called (a self-hosted model and no `prices` setting). The panel's runs
are recorded as the `acp` front end's, with the user who ran them."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text
from tests.test_acp import agent_env, of_kind, run_client

from agentls.core.audit import AuditStore

# gpt-4o-mini as OpenAI publishes it (openai.com/api/pricing, read 2026-12-01; unchanged since
# 2024-07-18), dollars per million tokens: input 0.15, cached input 0.075, output 0.60. A call of
# 100 prompt tokens (40 cached) and 20 output: (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 10^6.
CALL_COST = (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 1_000_000
LOCAL = """\
name: local
description: Answers with the team's own model
instructions: You answer briefly.
model: my-llama
"""


def answer() -> Text:
    return Text("Fine.", prompt_tokens=100, cached_tokens=40, completion_tokens=20)


def prompt(text: str) -> dict[str, Any]:
    return {"blocks": [{"type": "text", "text": text}]}


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("acp-costs")
    workspace = base / "ws"
    (workspace / ".agentls" / "agents").mkdir(parents=True)
    (workspace / ".agentls" / "agents" / "local.yaml").write_text(LOCAL, encoding="utf-8")
    settings = base / "home" / ".config" / "agentls" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"trustedFolders": [str(workspace)]}), encoding="utf-8")
    with ScriptedOpenAI(models=("gpt-4o-mini", "my-llama")) as server:
        server.enqueue(answer(), answer(), answer())
        env = agent_env(server, base / "home") | {"AGENTLS_USER": "carol"}
        transcript: dict[str, Any] = run_client(
            {
                "command": [sys.executable, "-m", "agentls", "acp", "--model", "gpt-4o-mini"],
                "cwd": str(workspace),
                "env": env,
                "clientFs": False,
                "prompts": [
                    prompt("/explain what is this?"),
                    prompt("/explain and this?"),
                    prompt("/local and now?"),
                ],
            }
        )
    transcript["workspace"] = workspace
    return transcript


def usage_of(transcript: dict[str, Any], index: int) -> dict[str, Any]:
    (usage,) = of_kind(transcript["prompts"][index]["updates"], "usage_update")
    return usage


def test_usage_updates_carry_the_session_cost_in_dollars(transcript: dict[str, Any]) -> None:
    first, second = usage_of(transcript, 0), usage_of(transcript, 1)
    assert first["cost"]["currency"] == "USD"
    assert first["cost"]["amount"] == pytest.approx(CALL_COST, rel=1e-9)
    # The session's total, not the call's.
    assert second["cost"]["amount"] == pytest.approx(2 * CALL_COST, rel=1e-9)


def test_a_call_without_a_price_leaves_the_session_cost_unknown(
    transcript: dict[str, Any],
) -> None:
    assert "cost" not in usage_of(transcript, 2)
    assert transcript["prompts"][2]["stopReason"] == "end_turn"


def test_panel_runs_are_recorded_as_the_acp_front_end(transcript: dict[str, Any]) -> None:
    with AuditStore.for_workspace(transcript["workspace"]) as audit:
        events = audit.query()
    assert len({e.run_id for e in events}) == 3
    assert {(e.user, e.front_end, e.workspace) for e in events} == {("carol", "acp", "ws")}
