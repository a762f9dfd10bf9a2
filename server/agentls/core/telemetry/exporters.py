"""The OTLP exporters the settings and the standard `OTEL_*` variables ask for.

A signal (traces, metrics, logs) is exported when an endpoint applies to it: `telemetry.otlpEndpoint`
(which wins), else its own `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`;
and when `OTEL_<SIGNAL>_EXPORTER` allows it (traces and metrics: unless `none`; logs: only `otlp`).
The protocol is `http/protobuf` unless `OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL` says `grpc`
(which needs `agentls[otlp-grpc]`). Headers, timeouts, compression and certificates are read by
the exporters themselves from their standard variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from agentls.core.telemetry.health import (
    ExportHealth,
    GuardedLogExporter,
    GuardedMetricExporter,
    GuardedSpanExporter,
)
from agentls.core.telemetry.settings import TelemetrySettings

HTTP = "http/protobuf"
GRPC = "grpc"
PATHS = {"TRACES": "v1/traces", "METRICS": "v1/metrics", "LOGS": "v1/logs"}
GRPC_MISSING = (
    "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: pip install 'agentls[otlp-grpc]' "
    "(or use http/protobuf, the default)"
)


@dataclass
class OtlpExporters:
    spans: SpanExporter | None
    metrics: MetricReader | None
    logs: LogRecordExporter | None
    health: ExportHealth


def _wanted(signal: str, environ: Mapping[str, str]) -> bool:
    raw = environ.get(f"OTEL_{signal}_EXPORTER", "")
    names = {n.strip().lower() for n in raw.split(",") if n.strip()}
    if signal == "LOGS":
        return "otlp" in names
    return not names or "otlp" in names


def _protocol(signal: str, environ: Mapping[str, str]) -> str:
    raw = (
        environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or HTTP
    ).strip()
    if raw not in (HTTP, GRPC):
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={raw!r} is not supported; use {HTTP} (the default) or {GRPC}"
        )
    return raw


def _endpoint(
    signal: str, protocol: str, settings: TelemetrySettings, environ: Mapping[str, str]
) -> str | None:
    if settings.otlp_endpoint:
        return _signal_url(settings.otlp_endpoint, signal, protocol)
    if specific := environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip():
        return specific
    if base := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return _signal_url(base, signal, protocol)
    return None


def _signal_url(base: str, signal: str, protocol: str) -> str:
    """The base endpoint plus the signal's path, as the OTLP/HTTP specification builds it."""
    if protocol == GRPC:
        return base
    return base.rstrip("/") + "/" + PATHS[signal]


def _exporter_class(signal: str, protocol: str) -> Any:
    if protocol == GRPC:
        try:
            if signal == "TRACES":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcSpans,
                )

                return GrpcSpans
            if signal == "METRICS":
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                    OTLPMetricExporter as GrpcMetrics,
                )

                return GrpcMetrics
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
                OTLPLogExporter as GrpcLogs,
            )

            return GrpcLogs
        except ImportError:
            raise ValueError(GRPC_MISSING) from None
    if signal == "TRACES":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter
    if signal == "METRICS":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter


def otlp_exporters(settings: TelemetrySettings, environ: Mapping[str, str]) -> OtlpExporters | None:
    """The exporters for every signal that has an endpoint; None when no signal has one."""
    built: dict[str, Any] = {}
    first: str | None = None
    for signal in PATHS:
        if not _wanted(signal, environ):
            continue
        protocol = _protocol(signal, environ)
        endpoint = _endpoint(signal, protocol, settings, environ)
        if endpoint is None:
            continue
        first = first or endpoint
        built[signal] = _exporter_class(signal, protocol)(endpoint=endpoint)
    if first is None:
        return None
    health = ExportHealth(first)
    health.install()
    metrics = built.get("METRICS")
    logs = built.get("LOGS")
    return OtlpExporters(
        spans=GuardedSpanExporter(built["TRACES"], health) if "TRACES" in built else None,
        metrics=PeriodicExportingMetricReader(GuardedMetricExporter(metrics, health))
        if metrics is not None
        else None,
        logs=GuardedLogExporter(logs, health) if logs is not None else None,
        health=health,
    )
