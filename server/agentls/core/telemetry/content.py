"""Opted-in content (prompts, answers, tool arguments and results), redacted off the event loop.

Content is exported only with `telemetry.captureContent`. Then a span's content is kept aside
(raw, by span id) when the span is built, and serialized and redacted as the audit trail is
(core/redact.py) on the export thread, just before the span is sent: redacting a long prompt
takes milliseconds, which the event loop never pays.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentls.core.redact import redact, redact_text
from agentls.core.telemetry.conventions import INPUT_MESSAGES, OUTPUT_MESSAGES

# Characters of one content attribute as exported (after redaction).
CONTENT_LIMIT = 16 * 1024
# Characters kept before redaction: more than the limit, so a secret cut at this end is never
# what is exported (the export cut comes first).
RAW_LIMIT = 4 * CONTENT_LIMIT
# Spans whose content waits for export; a span the queue dropped leaves its entry, so the oldest go.
MAX_PENDING = 8192


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ContentJar:
    """Raw content by span id, from the loop (put) to the export thread (take)."""

    def __init__(self) -> None:
        self._pending: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, span_id: int, content: dict[str, Any]) -> None:
        with self._lock:
            self._pending[span_id] = content
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)

    def take(self, span_id: int) -> dict[str, Any] | None:
        with self._lock:
            return self._pending.pop(span_id, None)

    def __len__(self) -> int:
        return len(self._pending)


def exported(value: Any) -> str:
    """One content attribute as it leaves the process: JSON (for structures), redacted, bounded.

    A callable is called first (here, on the export thread): the loop only kept what it needs.
    """
    if callable(value):
        value = value()
    if isinstance(value, str):
        return cut(redact_text(value[:RAW_LIMIT]), CONTENT_LIMIT)
    text = json.dumps(redact(value), ensure_ascii=False, default=str)
    return cut(text, CONTENT_LIMIT)


def text_message(role: str, text: str) -> list[dict[str, Any]]:
    """A message list in the conventions' shape (`gen_ai.input.messages` / `output.messages`)."""
    return [{"role": role, "parts": [{"type": "text", "content": text[:RAW_LIMIT]}]}]


def chat_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions messages in the conventions' shape (role + parts)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        content = message.get("content")
        if isinstance(content, str) and content:
            parts.append({"type": "text", "content": content[:RAW_LIMIT]})
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id") if isinstance(call, dict) else None,
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        if message.get("role") == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": content if isinstance(content, str) else None,
                }
            ]
        out.append({"role": message.get("role"), "parts": parts})
    return out


def chat_content(content: dict[str, Any]) -> dict[str, Any]:
    """A model call's request and answer, copied now (the run goes on appending to its messages)."""
    messages = content.get("messages") or []
    output: list[dict[str, Any]] = []
    text = content.get("output")
    if isinstance(text, str) and text:
        output = text_message("assistant", text)
    calls = content.get("tool_calls") or []
    if calls:
        parts = [
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.raw_arguments}
            for call in calls
        ]
        if output:
            output[0]["parts"].extend(parts)
        else:
            output = [{"role": "assistant", "parts": parts}]
    return {
        INPUT_MESSAGES: functools.partial(chat_messages, list(messages)),
        OUTPUT_MESSAGES: output,
    }


class ContentExporter(SpanExporter):
    """Adds the redacted content of each span that has some, then hands the batch on."""

    def __init__(self, inner: SpanExporter, jar: ContentJar) -> None:
        self.inner = inner
        self.jar = jar

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not len(self.jar):  # content is off (the default), or none is waiting
            return self.inner.export(spans)
        return self.inner.export([self._with_content(s) for s in spans])

    def _with_content(self, span: ReadableSpan) -> ReadableSpan:
        context = span.context
        raw = self.jar.take(context.span_id) if context is not None else None
        if not raw:
            return span
        attributes = dict(span.attributes or {})
        for key, value in raw.items():
            if value is not None:
                attributes[key] = exported(value)
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
