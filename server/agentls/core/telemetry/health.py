"""Export failures as one warning: a collector that is down, slow or refusing never fails a run.

The SDK logs each failed export (and each span a full queue drops) under the `opentelemetry`
loggers; in a process that runs for hours that is a line a minute. agentls routes those records
here instead: the first failure is one warning naming the endpoint and the reason, later ones
are counted (`dropped`), and the count is logged at exit (INFO).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.trace import ReadableSpan

log = logging.getLogger("agentls.telemetry")


class ExportHealth(logging.Handler):
    """Counts what could not be exported and warns once per process."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(level=logging.WARNING)
        self.endpoint = endpoint
        self.dropped = 0
        self.failures = 0
        self.warned = False
        self._reason: str | None = None
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """An SDK log record: remembered as the reason of the next failure; a full queue drops one."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is still a failure to report
            message = record.msg if isinstance(record.msg, str) else "export failed"
        with self._lock:
            self._reason = " ".join(message.split())[:300]
            if message.startswith("Queue full"):
                self.dropped += 1
        if message.startswith("Queue full"):
            self.failed(0)

    def failed(self, items: int, error: BaseException | None = None) -> None:
        with self._lock:
            self.failures += 1
            self.dropped += items
            if error is not None:
                self._reason = f"{type(error).__name__}: {error}"[:300]
            if self.warned:
                return
            self.warned = True
            reason = self._reason or "the export failed"
        log.warning(
            "agentls telemetry: could not export to %s (%s); runs go on, and what cannot be "
            "sent is dropped. Check that the collector is up, or unset OTEL_EXPORTER_OTLP_ENDPOINT "
            "(and telemetry.otlpEndpoint) to stop exporting",
            self.endpoint,
            reason,
        )

    def timed_out(self, seconds: float) -> None:
        """Exit did not wait longer for a collector that takes no data (it never answered)."""
        with self._lock:
            if self.warned:
                return
            self.warned = True
        log.warning(
            "agentls telemetry: the collector at %s did not take the last data within %g s; "
            "exiting without it. Check that the collector is up and answering",
            self.endpoint,
            seconds,
        )

    def install(self) -> None:
        """Take over the SDK's own log records (they would print one line per failed batch)."""
        sdk = logging.getLogger("opentelemetry")
        sdk.addHandler(self)
        sdk.propagate = False

    def summary(self) -> None:
        if self.dropped:
            log.info(
                "agentls telemetry: %d items were not exported to %s", self.dropped, self.endpoint
            )


class GuardedSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self.inner = inner
        self.health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the export thread
            self.health.failed(len(spans), exc)
            return SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.health.failed(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class GuardedMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, health: ExportHealth) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.health = health

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self.health.failed(0, exc)
            return MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self.health.failed(0)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class GuardedLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, health: ExportHealth) -> None:
        self.inner = inner
        self.health = health

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            result = self.inner.export(batch)
        except Exception as exc:
            self.health.failed(len(batch), exc)
            return LogRecordExportResult.FAILURE
        if result is not LogRecordExportResult.SUCCESS:
            self.health.failed(len(batch))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
