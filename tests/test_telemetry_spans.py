"""Telemetry: a run's events as GenAI spans and metrics, checked with the SDK's in-memory exporter
and metric reader (the OpenTelemetry SDK's own test tools), over a real runtime and the scripted
model server."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.rig.runtimes import runtime_over, scripted_model
from tests.rig.scripted_openai import ScriptedOpenAI, Text, ToolCall

import agentls.core.telemetry as telemetry
from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.events import RunStatus
from agentls.core.llm import ToolSpec
from agentls.core.runtime import AgentRuntime
from agentls.core.telemetry import TelemetrySettings
from agentls.core.telemetry.export import Telemetry

RESEARCH = AgentDefinition(
    name="researcher",
    description="Researches",
    instructions="Research.",
    mode=Mode.TOOLS,
    tools=["read_file"],
    max_turns=4,
    budget=50_000,
)
SECRET = "sk-proj-" + "Zq8vN3xR7tL2mK9pW4sJ6hB1cF5gD0aE"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
REMOTE_SPAN = "b7ad6b7169203331"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def metrics() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def tel(spans: InMemorySpanExporter, metrics: InMemoryMetricReader) -> Iterator[Telemetry]:
    t = Telemetry(spans, metrics, batch=False, environ={})
    yield t
    t.shutdown()


async def runtime_for(
    workspace: Path, server: ScriptedOpenAI, tel: Telemetry, *, capture: bool = False
) -> AgentRuntime:
    (workspace / "calc.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    model = scripted_model(server.url, max_retries=0)
    runtime = runtime_over(workspace, model, [RESEARCH])
    tel.attach(runtime, TelemetrySettings(capture_content=capture))
    return runtime


@pytest.fixture
async def runtime(
    tmp_path: Path, server: ScriptedOpenAI, tel: Telemetry
) -> AsyncIterator[AgentRuntime]:
    rt = await runtime_for(tmp_path, server, tel)
    yield rt
    await rt.aclose()


def by_name(spans: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def ordered(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def tool_then_answer(server: ScriptedOpenAI, path: str = "calc.py") -> None:
    server.enqueue(ToolCall("read_file", {"path": path}, id="call_7"), Text("add adds."))


async def test_a_tools_mode_run_is_one_span_tree_run_chat_tool_chat(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    tool_then_answer(server)
    result = await runtime.delegate("researcher", "What does add do?")
    assert result.status is RunStatus.FINISHED
    names = [s.name for s in ordered(spans)]
    assert names == [
        "invoke_agent researcher",
        "chat scripted-model",
        "execute_tool read_file",
        "chat scripted-model",
    ]
    (run,) = by_name(spans)["invoke_agent researcher"]
    assert run.parent is None
    for child in ordered(spans)[1:]:
        assert child.parent is not None and child.parent.span_id == run.context.span_id
        assert child.context.trace_id == run.context.trace_id
    assert attrs(run)["gen_ai.operation.name"] == "invoke_agent"
    assert attrs(run)["gen_ai.agent.name"] == "researcher"
    assert attrs(run)["gen_ai.conversation.id"] == result.run_id
    assert attrs(run)["agentls.run.status"] == "finished"
    assert attrs(run)["agentls.run.depth"] == 0
    assert attrs(run)["agentls.budget.limit"] == 50_000
    assert attrs(run)["agentls.budget.remaining"] == 50_000 - result.usage.total
    assert attrs(run)["agentls.workspace"] == str(runtime.workspace)
    assert run.status.status_code is StatusCode.UNSET


async def test_chat_spans_carry_the_model_call(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    tool_then_answer(server)
    await runtime.delegate("researcher", "What does add do?")
    first, second = by_name(spans)["chat scripted-model"]
    assert first.kind is SpanKind.CLIENT
    a = attrs(first)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "scripted-model"
    assert a["gen_ai.response.model"] == "scripted-model"
    assert a["gen_ai.request.max_tokens"] == 256
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attrs(second)["gen_ai.response.finish_reasons"] == ("stop",)
    assert first.end_time is not None and first.start_time is not None
    assert first.end_time > first.start_time


async def test_a_chat_span_carries_the_calls_cost_in_dollars_when_it_is_known(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    from agentls.core.pricing import ModelPrice

    runtime.config.prices = {"scripted-model": ModelPrice(input=1.0, output=2.0)}
    server.enqueue(Text("add adds.", prompt_tokens=1000, completion_tokens=500))
    result = await runtime.delegate("researcher", "What does add do?")
    (chat,) = by_name(spans)["chat scripted-model"]
    # $1 per million input tokens, $2 per million output: 1,000 in and 500 out cost $0.002.
    assert attrs(chat)["agentls.usage.cost_usd"] == pytest.approx(0.002)
    assert result.cost_usd == pytest.approx(0.002)


async def test_a_chat_span_has_no_cost_when_the_price_is_unknown(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    server.enqueue(Text("add adds."))
    await runtime.delegate("researcher", "What does add do?")
    (chat,) = by_name(spans)["chat scripted-model"]
    assert "agentls.usage.cost_usd" not in attrs(chat)


async def test_tool_span_names_the_call(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    tool_then_answer(server)
    await runtime.delegate("researcher", "What does add do?")
    (tool,) = by_name(spans)["execute_tool read_file"]
    a = attrs(tool)
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "read_file"
    assert a["gen_ai.tool.call.id"] == "call_7"
    assert a["gen_ai.tool.type"] == "function"
    assert tool.status.status_code is StatusCode.UNSET


async def test_token_figures_on_spans_equal_the_ledger(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    server.enqueue(
        ToolCall("read_file", {"path": "calc.py"}),
        Text("add adds.", prompt_tokens=900, completion_tokens=40, cached_tokens=512),
    )
    result = await runtime.delegate("researcher", "What does add do?")
    ledger = runtime.budgeter.run_snapshot(result.run_id).usage
    chats = by_name(spans)["chat scripted-model"]
    assert sum(attrs(s)["gen_ai.usage.input_tokens"] for s in chats) == ledger.input_tokens
    assert sum(attrs(s)["gen_ai.usage.output_tokens"] for s in chats) == ledger.output_tokens
    assert attrs(chats[1])["gen_ai.usage.cache_read.input_tokens"] == 512
    (run,) = by_name(spans)["invoke_agent researcher"]
    assert attrs(run)["gen_ai.usage.input_tokens"] == ledger.input_tokens
    assert attrs(run)["gen_ai.usage.output_tokens"] == ledger.output_tokens
    assert attrs(run)["gen_ai.usage.cache_read.input_tokens"] == ledger.cached_input_tokens


async def test_a_failed_tool_call_has_error_status(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    tool_then_answer(server, path="missing.py")
    result = await runtime.delegate("researcher", "Read it")
    assert result.status is RunStatus.FINISHED  # the model was told; the run went on
    (tool,) = by_name(spans)["execute_tool read_file"]
    assert tool.status.status_code is StatusCode.ERROR
    assert attrs(tool)["error.type"] == "tool_error"
    (run,) = by_name(spans)["invoke_agent researcher"]
    assert run.status.status_code is StatusCode.UNSET


async def test_a_run_that_fails_has_error_status(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    server.enqueue(*[ToolCall("read_file", {"path": "calc.py"})] * 4)
    result = await runtime.delegate("researcher", "Loop forever")
    assert result.status is RunStatus.FAILED
    (run,) = by_name(spans)["invoke_agent researcher"]
    assert run.status.status_code is StatusCode.ERROR
    assert attrs(run)["error.type"] == "failed"
    assert "max_turns" in (run.status.description or "")


def _values(spans: InMemorySpanExporter) -> str:
    return json.dumps([attrs(s) for s in spans.get_finished_spans()], default=str)


async def test_no_content_is_exported_by_default(
    server: ScriptedOpenAI, runtime: AgentRuntime, spans: InMemorySpanExporter
) -> None:
    tool_then_answer(server)
    await runtime.delegate("researcher", f"What does add do? my key is {SECRET}")
    exported = _values(spans)
    assert "What does add do" not in exported
    assert "add adds." not in exported
    assert "return a + b" not in exported  # the tool's result
    assert SECRET not in exported
    assert "gen_ai.input.messages" not in exported


async def test_content_is_exported_redacted_when_opted_in(
    tmp_path: Path, server: ScriptedOpenAI, tel: Telemetry, spans: InMemorySpanExporter
) -> None:
    runtime = await runtime_for(tmp_path, server, tel, capture=True)
    try:
        tool_then_answer(server)
        await runtime.delegate("researcher", f"What does add do? my key is {SECRET}")
    finally:
        await runtime.aclose()
    (run,) = by_name(spans)["invoke_agent researcher"]
    goal = json.loads(attrs(run)["gen_ai.input.messages"])
    assert goal[0]["role"] == "user"
    assert "What does add do?" in goal[0]["parts"][0]["content"]
    assert json.loads(attrs(run)["gen_ai.output.messages"])[0]["parts"][0]["content"] == "add adds."
    first, _ = by_name(spans)["chat scripted-model"]
    sent = json.loads(attrs(first)["gen_ai.input.messages"])
    assert [m["role"] for m in sent] == ["system", "user"]
    (tool,) = by_name(spans)["execute_tool read_file"]
    assert "return a + b" in attrs(tool)["gen_ai.tool.call.result"]
    assert "calc.py" in attrs(tool)["gen_ai.tool.call.arguments"]
    exported = _values(spans)
    assert SECRET not in exported
    assert "[REDACTED]" in exported


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


async def test_token_usage_metric_equals_the_ledger(
    server: ScriptedOpenAI, runtime: AgentRuntime, metrics: InMemoryMetricReader
) -> None:
    tool_then_answer(server)
    result = await runtime.delegate("researcher", "What does add do?")
    ledger = runtime.budgeter.run_snapshot(result.run_id).usage
    usage = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in _points(metrics, "gen_ai.client.token.usage")
    }
    assert usage == {"input": ledger.input_tokens, "output": ledger.output_tokens}
    durations = _points(metrics, "gen_ai.client.operation.duration")
    chat = [p for p in durations if p.attributes["gen_ai.operation.name"] == "chat"]
    assert sum(p.count for p in chat) == 2
    assert all(p.attributes["gen_ai.agent.name"] == "researcher" for p in chat)


async def test_budget_gauges_show_used_and_limit(
    server: ScriptedOpenAI, runtime: AgentRuntime, metrics: InMemoryMetricReader
) -> None:
    runtime.budgeter.set_limit(100_000)
    tool_then_answer(server)
    result = await runtime.delegate("researcher", "What does add do?")
    used = {
        p.attributes["agentls.budget.scope"]: p.value
        for p in _points(metrics, "agentls.budget.used")
    }
    limit = {
        p.attributes["agentls.budget.scope"]: p.value
        for p in _points(metrics, "agentls.budget.limit")
    }
    assert used["total"] == result.usage.total
    assert limit["total"] == 100_000


async def test_a_run_continues_the_trace_its_caller_passes(
    server: ScriptedOpenAI,
    runtime: AgentRuntime,
    tel: Telemetry,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `agentls mcp-server` and `agentls acp` do with a request's `_meta.traceparent`."""
    monkeypatch.setattr(telemetry, "_active", tel)
    server.enqueue(Text("fine"))
    telemetry.continue_trace({"traceparent": f"00-{TRACE_ID}-{REMOTE_SPAN}-01", "other": 1})
    await runtime.delegate("researcher", "Say fine")
    (run,) = by_name(spans)["invoke_agent researcher"]
    assert format(run.context.trace_id, "032x") == TRACE_ID
    assert run.parent is not None and format(run.parent.span_id, "016x") == REMOTE_SPAN
    assert run.parent.is_remote


async def test_a_process_continues_the_trace_in_its_environment(
    tmp_path: Path, server: ScriptedOpenAI, spans: InMemorySpanExporter
) -> None:
    tel = Telemetry(spans, batch=False, environ={"TRACEPARENT": f"00-{TRACE_ID}-{REMOTE_SPAN}-01"})
    runtime = await runtime_for(tmp_path, server, tel)
    try:
        server.enqueue(Text("fine"))
        await runtime.delegate("researcher", "Say fine")
    finally:
        await runtime.aclose()
        tel.shutdown()
    (run,) = by_name(spans)["invoke_agent researcher"]
    assert format(run.context.trace_id, "032x") == TRACE_ID
    assert run.parent is not None and format(run.parent.span_id, "016x") == REMOTE_SPAN


async def test_what_a_tool_starts_is_given_the_tool_span(
    tmp_path: Path,
    server: ScriptedOpenAI,
    tel: Telemetry,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delegation child is started with the run's span as TRACEPARENT; each call to it carries
    the execute_tool span as `_meta.traceparent`."""
    monkeypatch.setattr(telemetry, "_active", tel)
    seen: dict[str, Any] = {}

    class Probe:
        spec = ToolSpec("probe", "Says what a tool call starts with", {"type": "object"})
        read_only = True
        call_time_limit = None

        async def call(self, arguments: dict[str, Any]) -> Any:
            from agentls.core.tools.base import ToolResult

            seen["meta"] = telemetry.request_meta()
            seen["env"] = telemetry.child_env()
            return ToolResult(content="ok")

    async def extra_tools(definition: AgentDefinition) -> dict[str, Any]:
        return {"probe": Probe()}

    runtime = await runtime_for(tmp_path, server, tel)
    runtime.extra_tools = extra_tools
    try:
        server.enqueue(ToolCall("probe", {}), Text("done"))
        await runtime.delegate("researcher", "Probe")
    finally:
        await runtime.aclose()
    (tool,) = by_name(spans)["execute_tool probe"]
    trace_id = format(tool.context.trace_id, "032x")
    assert seen["meta"]["traceparent"].startswith(f"00-{trace_id}-{tool.context.span_id:016x}-")
    assert seen["env"]["TRACEPARENT"] == seen["meta"]["traceparent"]


def test_settings_or_variables_turn_export_on_and_otel_sdk_disabled_wins() -> None:
    assert not telemetry.configured(TelemetrySettings(), {})
    assert telemetry.configured(TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318"), {})
    assert telemetry.configured(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert telemetry.configured(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x/v1/traces"})
    assert not telemetry.configured(
        TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318"),
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
    )


def test_an_endpoint_that_is_not_a_url_is_refused_naming_the_setting() -> None:
    from agentls.lsp.settings import parse_settings

    settings, problems = parse_settings({"telemetry": {"otlpEndpoint": "127.0.0.1:4318"}})
    assert settings.telemetry.otlp_endpoint is None
    (problem,) = problems
    assert problem.startswith("setting agentls.telemetry.otlpEndpoint:")
    assert "http://" in problem
    on, _ = parse_settings({"telemetry": {"otlpEndpoint": "http://127.0.0.1:4318"}})
    assert on.engine(trusted=True).telemetry.otlp_endpoint == "http://127.0.0.1:4318"


def test_grpc_without_its_exporter_is_one_warning_saying_what_to_install(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentls.core.telemetry.export import start

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    # As on an install without the extra (None in sys.modules makes the import fail).
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc", None)
    with caplog.at_level("WARNING", logger="agentls.telemetry"):
        assert start(TelemetrySettings(otlp_endpoint="http://127.0.0.1:4317")) is None
    (record,) = caplog.records
    assert "pip install 'agentls[otlp-grpc]'" in record.getMessage()


def test_an_unknown_protocol_is_named_with_the_ones_that_work(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentls.core.telemetry.export import start

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with caplog.at_level("WARNING", logger="agentls.telemetry"):
        assert start(TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318")) is None
    (record,) = caplog.records
    assert "'http/json' is not supported; use http/protobuf (the default) or grpc" in (
        record.getMessage()
    )
