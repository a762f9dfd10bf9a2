"""One runtime's run events as GenAI spans, metric points and (optionally) log records.

`invoke_agent {agent}` spans a run, `chat {model}` each model call (a child of its run, timed by
the call), `execute_tool {tool}` each tool call. The listener runs on the event loop as each event
is emitted, so it only builds spans (export happens on the SDK's thread) and never raises into a
run: an internal error turns telemetry off for this runtime with one warning.

A run's span is made the current span of the run's task (and a tool call's span while the tool
runs), so what the run starts inherits it: a delegation child gets it as its `TRACEPARENT`, an MCP
call as `_meta.traceparent`.
"""

from __future__ import annotations

import functools
import getpass
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import agentls.core.telemetry.conventions as c
from agentls.core.events import TERMINAL_KINDS, TRANSIENT_KINDS, EventKind, RunEvent, RunStatus
from agentls.core.mcp_client.config import CHILD_SERVER
from agentls.core.redact import redact
from agentls.core.telemetry.content import chat_content, text_message
from agentls.core.telemetry.logs import emit_record

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from agentls.core.runtime import AgentRuntime
    from agentls.core.telemetry.records import OpenSpan, SpanHost

log = logging.getLogger("agentls.telemetry")

# The tools of a child agentls (core/tools/delegation.py): their runs spend this run's budget.
DELEGATION_PREFIX = f"mcp__{CHILD_SERVER}__"
# `agentls <command>` -> the front end that runs the runtime.
FRONT_ENDS = {"serve": "lsp", "mcp-server": "mcp", "acp": "acp"}
CLI_COMMANDS = frozenset({"run", "parallel", "create"})


def front_end(argv: list[str] | None = None) -> str:
    for word in (sys.argv if argv is None else argv)[1:]:
        if word in FRONT_ENDS:
            return FRONT_ENDS[word]
        if word in CLI_COMMANDS:
            return "cli"
    return "library"


def os_user() -> str | None:
    try:
        return os.environ.get("AGENTLS_USER") or getpass.getuser()
    except Exception:  # no user name on this system (a container without passwd)
        return None


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass
class _Run:
    span: OpenSpan
    context: Context
    limit: int | None
    tools: dict[str, OpenSpan] = field(default_factory=dict)
    delegated: bool = False
    content: dict[str, Any] | None = None


class RunSpans:
    """The listener a runtime's events go through (`runtime.subscribe`)."""

    def __init__(self, telemetry: SpanHost, runtime: AgentRuntime, *, capture: bool) -> None:
        self.telemetry = telemetry
        self.spans = telemetry.spans
        self.instruments = telemetry.instruments
        self.logs = telemetry.event_logger
        self.capture = capture
        self.runtime = runtime
        self.common: dict[str, Any] = {
            c.WORKSPACE: str(runtime.workspace),
            c.FRONT_END: front_end(),
        }
        if user := os_user():
            self.common[c.USER] = user
        self._runs: dict[str, _Run] = {}
        self._broken = False
        self._handlers = {
            EventKind.STARTED: self._started,
            EventKind.MODEL_CALL: self._model_call,
            EventKind.TOOL_STARTED: self._tool_started,
            EventKind.TOOL_CALL: self._tool_call,
        }

    def __call__(self, event: RunEvent) -> None:
        if self._broken:
            return
        try:
            run = self._runs.get(event.run_id)
            handler = self._handlers.get(event.kind)
            if handler is not None:
                handler(event)
            elif event.kind in TERMINAL_KINDS:
                self._ended(event)
            if self.logs is not None and event.kind not in TRANSIENT_KINDS:
                run = run or self._runs.get(event.run_id)
                emit_record(self.logs, event, run.context if run else None, self.capture)
        except Exception:
            self._broken = True
            log.warning(
                "agentls telemetry stopped for %s after an internal error; runs are not affected",
                self.runtime.workspace,
                exc_info=True,
            )

    # Runs

    def _started(self, event: RunEvent) -> None:
        parent = self.telemetry.parent_context()
        limit = event.data.get("budget")
        attributes: dict[str, Any] = {
            c.OPERATION_NAME: c.INVOKE_AGENT,
            c.AGENT_NAME: event.agent,
            c.CONVERSATION_ID: event.run_id,
            c.RUN_DEPTH: event.depth,
            c.RUN_MODE: str(event.data.get("mode", "")),
            **self.common,
        }
        if event.parent_run_id:
            attributes[c.RUN_PARENT_ID] = event.parent_run_id
        if isinstance(limit, int):
            attributes[c.BUDGET_LIMIT] = limit
        name = f"{c.INVOKE_AGENT} {event.agent}"
        span = self.spans.start(name, parent, SpanKind.INTERNAL, _ns(event.time), attributes)
        context = span.in_context(parent)
        run = _Run(span, context, limit if isinstance(limit, int) else None)
        if self.capture:
            run.content = {c.INPUT_MESSAGES: text_message("user", event.goal)}
            self.telemetry.jar.put(span.context.span_id, run.content)
        self._runs[event.run_id] = run
        # The run's task (this is its own emit) and what it starts continue the run's span.
        otel_context.attach(context)

    def _ended(self, event: RunEvent) -> None:
        run = self._runs.pop(event.run_id, None)
        end = _ns(event.time)
        if run is None:  # closed before it started (cancelled in the queue, a bad task)
            parent = self.telemetry.parent_context()
            attributes = {
                c.OPERATION_NAME: c.INVOKE_AGENT,
                c.AGENT_NAME: event.agent,
                c.CONVERSATION_ID: event.run_id,
                c.RUN_DEPTH: event.depth,
                **self.common,
            }
            name = f"{c.INVOKE_AGENT} {event.agent}"
            span = self.spans.start(name, parent, SpanKind.INTERNAL, end, attributes)
            run = _Run(span, span.in_context(parent), None)
        for tool in run.tools.values():
            tool.set_status(Status(StatusCode.ERROR, "the run ended during this tool call"))
            tool.set_attribute(c.ERROR_TYPE, event.status.value)
            tool.end(end_time=end)
        span = run.span
        usage = event.usage
        span.attributes.update(
            {
                c.RUN_STATUS: event.status.value,
                c.RUN_TURNS: int(event.data.get("turns", 0)),
                c.USAGE_INPUT_TOKENS: usage.input_tokens,
                c.USAGE_OUTPUT_TOKENS: usage.output_tokens,
                c.USAGE_CACHE_READ_INPUT_TOKENS: usage.cached_input_tokens,
                c.USAGE_REASONING_OUTPUT_TOKENS: usage.reasoning_tokens,
            }
        )
        if usage.estimated:
            span.attributes[c.USAGE_ESTIMATED] = True
        if event.status is not RunStatus.FINISHED:
            span.set_attribute(c.ERROR_TYPE, event.status.value)
            reason = redact(event.error or event.status.value)
            span.set_status(Status(StatusCode.ERROR, str(reason)[:300]))
        if run.content is not None and event.content and event.content.get("output"):
            run.content[c.OUTPUT_MESSAGES] = text_message("assistant", event.content["output"])
        duration = (event.duration_ms or 0.0) / 1000.0
        self.instruments.duration.record(
            duration,
            {
                c.OPERATION_NAME: c.INVOKE_AGENT,
                c.AGENT_NAME: event.agent,
                **(
                    {c.ERROR_TYPE: event.status.value}
                    if event.status is not RunStatus.FINISHED
                    else {}
                ),
            },
        )
        if run.limit is None:
            span.end(end_time=end)
        elif not run.delegated:
            span.set_attribute(c.BUDGET_REMAINING, max(0, run.limit - usage.total))
            span.end(end_time=end)
        else:
            self._end_after_ledger(event.run_id, span, end)

    def _end_after_ledger(self, run_id: str, span: OpenSpan, end: int) -> None:
        """A run that delegated: its budget was also spent by its children (other processes), so
        what is left comes from the shared ledger. It is read on a thread of its own (the ledger
        may be locked by another process), which then ends the span; exit waits for it."""
        budgeter = self.runtime.budgeter

        def read() -> None:
            try:
                remaining = budgeter.run_snapshot(run_id).remaining
                if remaining is not None:
                    span.set_attribute(c.BUDGET_REMAINING, remaining)
            except Exception as exc:  # the span goes out without it
                log.debug("telemetry: no budget left for run %s: %s", run_id, exc)
            finally:
                span.end(end_time=end)

        self.telemetry.in_background(read, f"agentls-telemetry-ledger-{run_id[:8]}")

    # Model calls

    def _model_call(self, event: RunEvent) -> None:
        run = self._runs.get(event.run_id)
        data = event.data
        model = str(data.get("request_model") or data.get("model") or "unknown")
        response_model = str(data.get("model") or model)
        provider = c.provider_of(model)
        usage = data.get("call_usage") or {}
        input_tokens = int(usage.get("input_tokens", 0))
        output_tokens = int(usage.get("output_tokens", 0))
        duration = (event.duration_ms or 0.0) / 1000.0
        end = _ns(event.time)
        attributes: dict[str, Any] = {
            c.OPERATION_NAME: c.CHAT,
            c.PROVIDER_NAME: provider,
            c.REQUEST_MODEL: model,
            c.RESPONSE_MODEL: response_model,
            c.USAGE_INPUT_TOKENS: input_tokens,
            c.USAGE_OUTPUT_TOKENS: output_tokens,
        }
        # Each attribute costs its encoding on every export: the ones that are usually zero,
        # false or absent are left out then.
        if cached := int(usage.get("cached_input_tokens", 0)):
            attributes[c.USAGE_CACHE_READ_INPUT_TOKENS] = cached
        if reasoning := int(usage.get("reasoning_tokens", 0)):
            attributes[c.USAGE_REASONING_OUTPUT_TOKENS] = reasoning
        if usage.get("estimated"):
            attributes[c.USAGE_ESTIMATED] = True
        if isinstance(data.get("max_tokens"), int):
            attributes[c.REQUEST_MAX_TOKENS] = data["max_tokens"]
        if isinstance(data.get("reserved"), int):
            attributes[c.BUDGET_RESERVED] = data["reserved"]
        if data.get("finish_reason"):
            attributes[c.RESPONSE_FINISH_REASONS] = (str(data["finish_reason"]),)
        cost = data.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            attributes[c.USAGE_COST_USD] = float(cost)
        parent = run.context if run else self.telemetry.parent_context()
        start = end - _ns(duration)
        span = self.spans.start(f"{c.CHAT} {model}", parent, SpanKind.CLIENT, start, attributes)
        if self.capture and event.content:
            self.telemetry.jar.put(span.context.span_id, chat_content(event.content))
        span.end(end_time=end)
        metric, inputs, outputs = self._chat_metric_attributes(
            provider, model, response_model, event.agent
        )
        self.instruments.duration.record(duration, metric)
        self.instruments.token_usage.record(input_tokens, inputs)
        self.instruments.token_usage.record(output_tokens, outputs)

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one per runtime, as long as it lives)
    def _chat_metric_attributes(
        self, provider: str, model: str, response_model: str, agent: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The attribute sets of a model call's metric points (duration, input, output)."""
        metric = {
            c.OPERATION_NAME: c.CHAT,
            c.PROVIDER_NAME: provider,
            c.REQUEST_MODEL: model,
            c.RESPONSE_MODEL: response_model,
            c.AGENT_NAME: agent,
        }
        return metric, {**metric, c.TOKEN_TYPE: "input"}, {**metric, c.TOKEN_TYPE: "output"}

    # Tool calls

    def _tool_started(self, event: RunEvent) -> None:
        run = self._runs.get(event.run_id)
        if run is None or event.data.get("progress"):
            return  # a progress report of a tool call already under way
        name = str(event.data.get("tool", "tool"))
        span = self._tool_span(run, event, name, _ns(event.time))
        run.tools[self._tool_key(event)] = span
        # While the tool runs, what it starts (a delegation's MCP call) continues its span.
        otel_context.attach(span.in_context(run.context))

    def _tool_call(self, event: RunEvent) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        name = str(event.data.get("tool", "tool"))
        end = _ns(event.time)
        span = run.tools.pop(self._tool_key(event), None)
        if span is None and not event.data.get("call_id"):
            # A command cut short is recorded by the command itself, without the call's id.
            prefix = f"{c.EXECUTE_TOOL} {name}"
            key = next((k for k, s in run.tools.items() if s.name == prefix), None)
            span = run.tools.pop(key) if key is not None else None
        if span is None:  # recorded without a start
            span = self._tool_span(run, event, name, end - _ns((event.duration_ms or 0) / 1000))
        if name.startswith(DELEGATION_PREFIX):
            run.delegated = True
        if event.data.get("is_error"):
            span.set_attribute(c.ERROR_TYPE, "tool_error")
            span.set_status(Status(StatusCode.ERROR, "the tool call failed"))
        if self.capture and event.content:
            self.telemetry.jar.put(
                span.context.span_id,
                {
                    c.TOOL_CALL_ARGUMENTS: event.content.get("arguments"),
                    c.TOOL_CALL_RESULT: event.content.get("result"),
                },
            )
        span.end(end_time=end)
        if trace.get_current_span().get_span_context().span_id == span.context.span_id:
            otel_context.attach(run.context)

    def _tool_span(self, run: _Run, event: RunEvent, name: str, start: int) -> OpenSpan:
        attributes: dict[str, Any] = {
            c.OPERATION_NAME: c.EXECUTE_TOOL,
            c.TOOL_NAME: name,
            c.TOOL_TYPE: c.tool_type(name),
        }
        if call_id := event.data.get("call_id"):
            attributes[c.TOOL_CALL_ID] = str(call_id)
        name = f"{c.EXECUTE_TOOL} {name}"
        return self.spans.start(name, run.context, SpanKind.INTERNAL, start, attributes)

    @staticmethod
    def _tool_key(event: RunEvent) -> str:
        return str(event.data.get("call_id") or event.data.get("tool", "tool"))
