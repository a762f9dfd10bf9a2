"""An OTLP/HTTP receiver on 127.0.0.1 for tests: what a collector (Jaeger, Tempo...) would receive.

It decodes each POST to /v1/traces, /v1/metrics and /v1/logs with `opentelemetry-proto` and keeps
the requests. `behaviour` stands for a collector's faults: "ok" (200), "error" (500 every time) or
"hang" (never answers until the receiver stops)::

    with OtlpReceiver() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        ...
        spans = collector.spans()
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

Behaviour = Literal["ok", "error", "hang"]
MESSAGES: dict[str, Any] = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived, with the resource (the process) that sent it."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class OtlpReceiver:
    def __init__(self, behaviour: Behaviour = "ok") -> None:
        self.behaviour = behaviour
        self.requests: dict[str, list[Any]] = {path: [] for path in MESSAGES}
        self.posts = 0
        self.released = threading.Event()
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.arrived:
                    receiver.posts += 1
                    receiver.arrived.notify_all()
                if receiver.behaviour == "hang":
                    receiver.released.wait()
                    return
                message = MESSAGES.get(self.path)
                if receiver.behaviour == "error" or message is None:
                    self.send_response(500 if message else 404)
                    self.end_headers()
                    return
                request = message()
                request.ParseFromString(body)
                with receiver.arrived:
                    receiver.requests[self.path].append(request)
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[ReceivedSpan]:
        out = []
        with self.arrived:
            requests = list(self.requests["/v1/traces"])
        for request in requests:
            for rs in request.resource_spans:
                resource = attributes_of(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            ReceivedSpan(
                                name=s.name,
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent_span_id=s.parent_span_id.hex(),
                                attributes=attributes_of(s.attributes),
                                resource=resource,
                                status_code=s.status.code,
                            )
                        )
        return out

    def metric_names(self) -> set[str]:
        with self.arrived:
            requests = list(self.requests["/v1/metrics"])
        return {
            m.name
            for r in requests
            for rm in r.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }

    def log_bodies(self) -> list[str]:
        with self.arrived:
            requests = list(self.requests["/v1/logs"])
        return [
            lr.body.string_value
            for r in requests
            for rl in r.resource_logs
            for sl in rl.scope_logs
            for lr in sl.log_records
        ]
