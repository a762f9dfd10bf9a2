"""OpenTelemetry export of the run event stream: GenAI spans, metrics and (optionally) log records.

This module is the light front door: it decides from the settings and the standard `OTEL_*`
variables whether telemetry is on, and only then imports the SDK (`export.py`, `spans.py`), so a
process without telemetry never loads OpenTelemetry. One `Telemetry` per process (the SDK's
providers and exporters) serves every runtime attached to it; each runtime gets its own listener.

Propagation (W3C trace context) works across processes: a delegation child gets `TRACEPARENT`
in its environment (the delegating run's span) and `_meta.traceparent` on each MCP call (the
`execute_tool` span of that call); `agentls mcp-server` and `agentls acp` continue a trace their
client passes either way. See docs/telemetry.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentls.core.runtime import AgentRuntime
    from agentls.core.telemetry.export import Telemetry

from agentls.core.telemetry.settings import (
    ENDPOINT_VARIABLES,
    TRACEPARENT_ENV,
    TRACESTATE_ENV,
    TelemetrySettings,
    endpoint_url,
)

__all__ = [
    "ENDPOINT_VARIABLES",
    "TRACEPARENT_ENV",
    "TRACESTATE_ENV",
    "TelemetrySettings",
    "active",
    "attach",
    "child_env",
    "configured",
    "continue_trace",
    "endpoint_url",
    "request_meta",
    "shutdown",
]


def sdk_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def configured(
    settings: TelemetrySettings | None = None, environ: Mapping[str, str] = os.environ
) -> bool:
    """True when an OTLP endpoint is set (setting or standard variable) and the SDK is not disabled."""
    if sdk_disabled(environ):
        return False
    if settings is not None and settings.otlp_endpoint:
        return True
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


_active: Telemetry | None = None
# Set once the process tried to start telemetry: a set-up that failed warned once, not per runtime.
_tried = False


def active() -> Telemetry | None:
    """The process's telemetry, once a configured runtime has started it."""
    return _active


def attach(runtime: AgentRuntime, settings: TelemetrySettings | None) -> None:
    """Export `runtime`'s runs when telemetry is configured; otherwise do nothing (and import nothing).

    Never raises: a telemetry set-up that fails is one warning, and the runtime runs without it.
    """
    global _active, _tried
    if not configured(settings):
        return
    from agentls.core.telemetry.export import start

    settings = settings or TelemetrySettings()
    if not _tried:
        _tried = True
        _active = start(settings)
    if _active is not None:
        _active.attach(runtime, settings)


def child_env() -> dict[str, str]:
    """Environment a delegation child needs to export into the same trace: the `OTEL_*`
    variables of this process and the current span as `TRACEPARENT` (when telemetry is on)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}
    if _active is not None:
        for key, value in _active.inject().items():
            env[key.upper()] = value
    return env


def request_meta() -> Any:
    """`_meta` for an outgoing MCP request (a dict, or None): the current span's `traceparent`,
    when telemetry is on. Typed loosely: the MCP SDK's own type for it is not imported here."""
    if _active is None:
        return None
    return _active.inject() or None


def continue_trace(meta: Any) -> None:
    """Make the trace context a client passed in a request's `_meta` (`traceparent`, `tracestate`)
    the parent of the runs this request starts (the caller's task and the tasks it creates)."""
    if _active is None or meta is None:
        return
    if not isinstance(meta, Mapping):
        meta = getattr(meta, "model_extra", None) or getattr(meta, "__dict__", {})
    carrier = {k: v for k, v in meta.items() if k in ("traceparent", "tracestate")}
    if isinstance(carrier.get("traceparent"), str):
        _active.continue_from(carrier)


def shutdown(timeout: float | None = None) -> None:
    """Flush what is queued within `timeout` seconds (default: the exit bound) and stop exporting.

    Called at exit; a collector that is down or slow never holds the process longer than that.
    """
    if _active is not None:
        _active.shutdown(timeout)
