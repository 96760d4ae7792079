"""A minimal OTLP/HTTP (protobuf) receiver on a free loopback port, for the wire tests.

The receiver decodes the protobuf requests with ``opentelemetry-proto``.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TIMEOUT = 30.0


def decode_value(value: AnyValue) -> Any:
    """The Python value an OTLP ``AnyValue`` holds."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [decode_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, kind)


def decode_attributes(items: Any) -> dict[str, Any]:
    kvs: list[KeyValue] = list(items)
    return {kv.key: decode_value(kv.value) for kv in kvs}


@dataclass
class WireSpan:
    """One span as received: ids in hex, attributes decoded, with its resource and scope."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    events: list[str]


class OtlpReceiver:
    """A minimal OTLP/HTTP (protobuf) collector on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.trace_requests: list[ExportTraceServiceRequest] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                reply = receiver._accept(self.path, self.headers.get("Content-Type", ""), body)
                if reply is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self, path: str, content_type: str, body: bytes) -> bytes | None:
        assert content_type == "application/x-protobuf", content_type
        with self._cond:
            self.paths.append(path)
            if path.endswith("/traces"):
                self.trace_requests.append(ExportTraceServiceRequest.FromString(body))
                reply: bytes = ExportTraceServiceResponse().SerializeToString()
            elif path.endswith("/metrics"):
                self.metric_requests.append(ExportMetricsServiceRequest.FromString(body))
                reply = ExportMetricsServiceResponse().SerializeToString()
            else:
                return None
            self._cond.notify_all()
            return reply

    def spans(self) -> list[WireSpan]:
        """Every span received so far, in arrival order."""
        out = []
        with self._cond:
            requests = list(self.trace_requests)
        for request in requests:
            for rs in request.resource_spans:
                resource = decode_attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append(
                            WireSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                kind=span.kind,
                                status_code=span.status.code,
                                attributes=decode_attributes(span.attributes),
                                resource=resource,
                                scope=ss.scope.name,
                                events=[e.name for e in span.events],
                            )
                        )
        return out

    def metrics(self) -> dict[str, Any]:
        """Metric name -> the last received ``Metric`` message of that name."""
        out: dict[str, Any] = {}
        with self._cond:
            requests = list(self.metric_requests)
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        out[metric.name] = metric
        return out

    def wait_for_spans(self, count: int, timeout: float = TIMEOUT) -> list[WireSpan]:
        """Wait until at least ``count`` spans arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(_span_count(r) for r in self.trace_requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        return self.spans()

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
