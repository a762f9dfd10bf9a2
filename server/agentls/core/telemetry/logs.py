"""Audit events as OpenTelemetry log records (`OTEL_LOGS_EXPORTER=otlp`), tied to their run's span."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opentelemetry._logs import SeverityNumber

import agentls.core.telemetry.conventions as c
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.redact import redact

if TYPE_CHECKING:
    from opentelemetry.context import Context

# Characters of an event's data in a record (with captureContent).
DATA_LIMIT = 4096


def emit_record(logger: Any, event: RunEvent, context: Context | None, capture: bool) -> None:
    """One log record for a persisted event: what `agentls audit` would list, without content
    unless `capture` (then redacted as the audit trail is)."""
    failed = event.status in (RunStatus.FAILED, RunStatus.INTERRUPTED)
    attributes: dict[str, Any] = {
        c.EVENT_KIND: event.kind.value,
        c.EVENT_ID: event.event_id,
        c.RUN_ID: event.run_id,
        c.AGENT_NAME: event.agent,
        c.RUN_STATUS: event.status.value,
        c.RUN_DEPTH: event.depth,
        c.USAGE_INPUT_TOKENS: event.usage.input_tokens,
        c.USAGE_OUTPUT_TOKENS: event.usage.output_tokens,
    }
    if event.parent_run_id:
        attributes[c.RUN_PARENT_ID] = event.parent_run_id
    if capture:
        if event.kind is EventKind.STARTED:  # the same goal rides on every event of the run
            attributes["agentls.goal"] = redact(event.goal)
        if event.error:
            attributes["agentls.error"] = redact(event.error)
        if event.data:
            data = json.dumps(redact(event.data), ensure_ascii=False, default=str)
            attributes["agentls.data"] = data[:DATA_LIMIT]
    logger.emit(
        timestamp=int(event.time * 1e9),
        context=context,
        severity_number=SeverityNumber.WARN if failed else SeverityNumber.INFO,
        body=f"{event.agent} {event.kind.value}",
        event_name=f"agentls.{event.kind.value}",
        attributes=attributes,
    )
