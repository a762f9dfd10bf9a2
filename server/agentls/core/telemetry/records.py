"""Spans built straight as the SDK's finished-span records, for a span-per-event cost the loop can pay.

A run's events arrive after the fact (a model call's event comes when the call is over), so
agentls needs no live span objects: it needs ids (for parent links and propagation) while a span
is open, and one `ReadableSpan` when it ends, handed to the SDK's span processor (the batch
processor, whose thread exports it). The SDK's `Tracer.start_span` would also validate every
attribute, take locks and consult a sampler, several times the cost. The sampling decision
followed here is the parent's: a trace a caller did not sample is propagated, not recorded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from agentls.core.telemetry.content import ContentJar

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)


def _nonzero(bits: int) -> int:
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


class OpenSpan:
    """A span that has started and not yet ended: its identity, and what it will carry."""

    __slots__ = ("_maker", "attributes", "context", "kind", "name", "parent", "start", "status")

    def __init__(
        self,
        maker: SpanMaker,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        start: int,
        attributes: dict[str, Any],
    ) -> None:
        self._maker = maker
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.start = start
        self.attributes = attributes
        self.status = _UNSET

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_status(self, status: Status) -> None:
        self.status = status

    def in_context(self, parent: Context | None) -> Context:
        """`parent` with this span as the current span (what propagation injects)."""
        return trace.set_span_in_context(NonRecordingSpan(self.context), parent)

    def end(self, end_time: int) -> None:
        if self.context.trace_flags.sampled:
            self._maker.finished(self, end_time)


@dataclass
class Instruments:
    """The GenAI metrics that model calls and tool calls are counted in."""

    token_usage: Any
    duration: Any


class SpanHost(Protocol):
    """What a runtime's listener (spans.py `RunSpans`) needs of the process's telemetry
    (export.py `Telemetry`): where spans, metrics and log records go, and two services."""

    spans: SpanMaker
    instruments: Instruments
    event_logger: Any  # None unless log records are exported
    jar: ContentJar  # captured content, until its span is exported

    def parent_context(self) -> Context | None:
        """The parent of a run starting now."""
        ...

    def in_background(self, work: Callable[[], None], name: str) -> None:
        """Run `work` on a thread that exit waits for."""
        ...


class SpanMaker:
    """Opens spans under a parent context and hands finished ones to the span processor."""

    def __init__(
        self, processor: SpanProcessor | None, resource: Resource, scope: InstrumentationScope
    ) -> None:
        self.processor = processor
        self.resource = resource
        self.scope = scope

    def start(
        self,
        name: str,
        parent: Context | SpanContext | None,
        kind: SpanKind,
        start: int,
        attributes: dict[str, Any],
    ) -> OpenSpan:
        above = (
            parent
            if isinstance(parent, SpanContext) or parent is None
            else trace.get_current_span(parent).get_span_context()
        )
        if above is not None and above.is_valid:
            context = SpanContext(above.trace_id, _nonzero(64), False, above.trace_flags)
            return OpenSpan(self, name, context, above, kind, start, attributes)
        context = SpanContext(_nonzero(128), _nonzero(64), False, _SAMPLED)
        return OpenSpan(self, name, context, None, kind, start, attributes)

    def finished(self, span: OpenSpan, end_time: int) -> None:
        if self.processor is None:
            return
        self.processor.on_end(
            ReadableSpan(
                name=span.name,
                context=span.context,
                parent=span.parent,
                resource=self.resource,
                attributes=span.attributes,
                kind=span.kind,
                status=span.status,
                start_time=span.start,
                end_time=end_time,
                instrumentation_scope=self.scope,
            )
        )
