"""The `telemetry.*` settings and the variables that turn export on (no OpenTelemetry import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

# Any of these turns export on (with OTEL_SDK_DISABLED unset or false).
ENDPOINT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)
# The W3C trace context a process continues, as a parent passes it to a child (and as CI
# systems and other OTel-aware launchers set it).
TRACEPARENT_ENV = "TRACEPARENT"
TRACESTATE_ENV = "TRACESTATE"


class TelemetrySettings(BaseModel):
    """`telemetry.*` settings; the `OTEL_*` environment variables do the rest (docs/telemetry.md)."""

    model_config = ConfigDict(extra="forbid")
    # OTLP base endpoint (e.g. http://127.0.0.1:4318); wins over OTEL_EXPORTER_OTLP_ENDPOINT.
    otlp_endpoint: str | None = None
    # Export prompts, answers, tool arguments and results (redacted as the audit trail is).
    capture_content: bool = False

    @field_validator("otlp_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return endpoint_url(value)


def endpoint_url(value: str | None) -> str | None:
    """An OTLP endpoint is an http(s) URL; empty means none."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError(
            f"{value!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:4318)"
        )
    return value
