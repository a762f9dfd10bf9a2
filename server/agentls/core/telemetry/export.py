"""The OpenTelemetry SDK set-up of a process: providers, OTLP exporters, propagation, exit.

Built from the standard variables (`OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`, `OTEL_LOGS_EXPORTER`,
`OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`) and `telemetry.otlpEndpoint`. Spans and log records
go through batch processors (bounded queues, exported on the SDK's own daemon threads); metrics
through a periodic reader. The exporters are wrapped so that failures are one warning.

The SDK's global providers are left alone: agentls keeps its own, so a host application's (or the
ACP SDK's) instrumentation is not mixed into agentls' traces.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import agentls.core.telemetry.conventions as c
from agentls import __version__
from agentls.core.telemetry.content import ContentExporter, ContentJar
from agentls.core.telemetry.health import ExportHealth
from agentls.core.telemetry.records import Instruments, SpanMaker
from agentls.core.telemetry.settings import TRACEPARENT_ENV, TRACESTATE_ENV, TelemetrySettings

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from agentls.core.runtime import AgentRuntime

log = logging.getLogger("agentls.telemetry")

_OFF = AlwaysOffExemplarFilter()
# How long exit may wait for the last spans, metrics and log records to go out.
EXIT_FLUSH_SECONDS = 2.0
_PROPAGATOR = TraceContextTextMapPropagator()


class Telemetry:
    """The process's providers, and the runtimes whose runs they export."""

    def __init__(
        self,
        span_exporter: SpanExporter | None,
        metric_reader: MetricReader | None = None,
        log_exporter: LogRecordExporter | None = None,
        *,
        health: ExportHealth | None = None,
        batch: bool = True,
        environ: dict[str, str] | None = None,
    ) -> None:
        env = dict(os.environ if environ is None else environ)
        self.health = health
        self.jar = ContentJar()
        self.resource = service_resource()
        self.span_processor: SpanProcessor | None = None
        if span_exporter is not None:
            exporter = ContentExporter(span_exporter, self.jar)
            self.span_processor = (
                BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            )
        scope = InstrumentationScope(c.INSTRUMENTATION_NAME, __version__, c.SCHEMA_URL)
        self.spans = SpanMaker(self.span_processor, self.resource, scope)
        readers = [metric_reader] if metric_reader is not None else []
        # Exemplars (a sampled span's ids on a metric point) cost a few microseconds on every
        # measurement; they are on only when OTEL_METRICS_EXEMPLAR_FILTER asks for them.
        self.meter_provider = MeterProvider(
            metric_readers=readers,
            resource=self.resource,
            shutdown_on_exit=False,
            exemplar_filter=None if env.get("OTEL_METRICS_EXEMPLAR_FILTER") else _OFF,
        )
        self.instruments = self._instruments()
        self.logger_provider: LoggerProvider | None = None
        self.event_logger: Any = None
        if log_exporter is not None:
            self.logger_provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
            self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
            self.event_logger = self.logger_provider.get_logger(
                c.INSTRUMENTATION_NAME, __version__, schema_url=c.SCHEMA_URL
            )
        # The trace this process continues: a parent agentls (or a launcher) passed it.
        self.env_parent = parent_from_env(env)
        self.endpoint: str | None = None
        self._runtimes: weakref.WeakSet[AgentRuntime] = weakref.WeakSet()
        self._background: set[threading.Thread] = set()
        self._closed = False
        self._lock = threading.Lock()

    def _instruments(self) -> Instruments:
        meter = self.meter_provider.get_meter(
            c.INSTRUMENTATION_NAME, __version__, schema_url=c.SCHEMA_URL
        )
        meter.create_observable_gauge(
            c.BUDGET_USED_METRIC,
            callbacks=[self._budget_used],
            unit="{token}",
            description="Tokens committed against a budget scope (total, per agent)",
        )
        meter.create_observable_gauge(
            c.BUDGET_LIMIT_METRIC,
            callbacks=[self._budget_limit],
            unit="{token}",
            description="The token limit of a budget scope that has one",
        )
        return Instruments(
            token_usage=meter.create_histogram(
                c.TOKEN_USAGE_METRIC,
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=list(c.TOKEN_BUCKETS),
            ),
            duration=meter.create_histogram(
                c.OPERATION_DURATION_METRIC,
                unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=list(c.DURATION_BUCKETS),
            ),
        )

    def attach(self, runtime: AgentRuntime, settings: TelemetrySettings) -> None:
        from agentls.core.telemetry.spans import RunSpans

        if settings.otlp_endpoint and self.endpoint and settings.otlp_endpoint != self.endpoint:
            log.warning(
                "agentls telemetry: telemetry.otlpEndpoint changed to %s; this process keeps "
                "exporting to %s until it restarts",
                settings.otlp_endpoint,
                self.endpoint,
            )
        self._runtimes.add(runtime)
        runtime.subscribe(RunSpans(self, runtime, capture=settings.capture_content))

    def in_background(self, work: Callable[[], None], name: str) -> None:
        """Run `work` (which ends a span) on a thread; exit waits for it within its bound."""

        def run() -> None:
            try:
                work()
            finally:
                self._background.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._background.add(thread)
        thread.start()

    # Propagation

    def inject(self) -> dict[str, str]:
        """The current span (else the trace this process continues) as W3C trace context."""
        carrier: dict[str, str] = {}
        current = otel_context.get_current()
        if not trace.get_current_span(current).get_span_context().is_valid:
            if self.env_parent is None:
                return carrier
            current = self.env_parent
        _PROPAGATOR.inject(carrier, context=current)
        return carrier

    def continue_from(self, carrier: dict[str, str]) -> None:
        parent = _PROPAGATOR.extract(carrier)
        if trace.get_current_span(parent).get_span_context().is_valid:
            otel_context.attach(parent)

    def parent_context(self) -> Context | None:
        """The parent of a run starting now: the caller's span, else the trace passed at start-up."""
        current = otel_context.get_current()
        if trace.get_current_span(current).get_span_context().is_valid:
            return current
        return self.env_parent

    # Budget gauges, read on the metric reader's thread (never on the event loop)

    def _snapshots(self) -> Iterable[tuple[str, Any]]:
        for runtime in list(self._runtimes):
            try:
                yield str(runtime.workspace), runtime.budgeter.snapshot()
            except Exception:  # a ledger that is closed (exit) or busy: no point this time
                continue

    def _budget_used(self, options: CallbackOptions) -> Iterable[Observation]:
        for workspace, snap in self._snapshots():
            yield Observation(snap.used, {c.BUDGET_SCOPE: "total", c.WORKSPACE: workspace})
            for agent, scope in snap.agents.items():
                attrs = {c.BUDGET_SCOPE: "agent", c.AGENT_NAME: agent, c.WORKSPACE: workspace}
                yield Observation(scope.used, attrs)

    def _budget_limit(self, options: CallbackOptions) -> Iterable[Observation]:
        for workspace, snap in self._snapshots():
            if snap.limit is not None:
                yield Observation(snap.limit, {c.BUDGET_SCOPE: "total", c.WORKSPACE: workspace})
            for agent, scope in snap.agents.items():
                if scope.limit is not None:
                    attrs = {c.BUDGET_SCOPE: "agent", c.AGENT_NAME: agent, c.WORKSPACE: workspace}
                    yield Observation(scope.limit, attrs)

    # Exit

    def shutdown(self, timeout: float | None = None) -> None:
        """Send what is queued, waiting at most `timeout` seconds; then stop exporting.

        The SDK's own flush waits for a slow collector as long as its export timeout, so it runs
        on a daemon thread that exit does not wait for past the bound.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        bound = EXIT_FLUSH_SECONDS if timeout is None else timeout
        ends = time.monotonic() + bound
        for work in list(self._background):  # spans still being finished
            work.join(max(0.0, ends - time.monotonic()))
        done = threading.Thread(target=self._shutdown_providers, name="agentls-telemetry-exit")
        done.daemon = True
        done.start()
        done.join(max(0.0, ends - time.monotonic()))
        if self.health is not None:
            if done.is_alive():
                self.health.timed_out(bound)
            self.health.summary()

    def _shutdown_providers(self) -> None:
        for provider in (self.span_processor, self.logger_provider, self.meter_provider):
            if provider is None:
                continue
            try:
                provider.shutdown()
            except Exception as exc:  # a broken exporter must not turn exit into a traceback
                log.debug("telemetry shutdown: %s", exc)


def service_resource() -> Resource:
    """OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, with `agentls` as the default service name."""
    resource = Resource.create({"service.version": __version__})
    name = str(resource.attributes.get("service.name", ""))
    if not name or name.startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "agentls"}))
    return resource


def parent_from_env(environ: dict[str, str]) -> Context | None:
    traceparent = environ.get(TRACEPARENT_ENV, "").strip()
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate := environ.get(TRACESTATE_ENV, "").strip():
        carrier["tracestate"] = tracestate
    parent = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(parent).get_span_context().is_valid:
        log.warning(
            "agentls telemetry: ignoring %s=%r (not W3C trace context)",
            TRACEPARENT_ENV,
            traceparent,
        )
        return None
    return parent


def start(settings: TelemetrySettings) -> Telemetry | None:
    """The process's telemetry from settings and environment; None (and one warning) if it cannot start."""
    from agentls.core.telemetry.exporters import otlp_exporters

    try:
        exporters = otlp_exporters(settings, os.environ)
        if exporters is None:
            return None
        telemetry = Telemetry(
            exporters.spans,
            exporters.metrics,
            exporters.logs,
            health=exporters.health,
        )
    except Exception as exc:  # a bad variable must not stop agentls from working
        log.warning("agentls telemetry is off: %s", exc)
        return None
    telemetry.endpoint = settings.otlp_endpoint or exporters.health.endpoint
    atexit.register(telemetry.shutdown)
    return telemetry
