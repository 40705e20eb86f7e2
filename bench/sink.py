"""A no-op OpenTelemetry collector for `task bench`: the app's traces go somewhere that does nothing.

The app exports with the OTLP/HTTP exporter only (app/infrastructure/tracing.py: no
OTEL_TRACES_EXPORTER=none), so the traced variant runs exactly the production configuration, its
exporter pointed (OTEL_EXPORTER_OTLP_ENDPOINT) at this server: a thread of the bench process that
answers 200 to every export and keeps its body, decoded only afterwards to count the spans (the
proof that tracing was on). Its thread is pinned to the load generator's core, off the servers'.
"""

import gzip
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Sink:
    url: str
    exports: list[bytes] = field(default_factory=list)

    def spans(self) -> int:
        """Spans received so far (the exporter sends batches every few seconds and at shutdown)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: PLC0415

        total = 0
        for body in list(self.exports):
            request = ExportTraceServiceRequest.FromString(body)
            total += sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        return total


@contextmanager
def otlp_sink(cpu: int | None) -> Iterator[Sink]:
    """A no-op OTLP/HTTP collector on 127.0.0.1 (a free port), served while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    sink = Sink(f"http://127.0.0.1:{server.server_address[1]}")
    server.sink = sink  # type: ignore[attr-defined]

    def serve() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})  # this thread, and the connection threads it starts
        server.serve_forever(poll_interval=0.2)

    thread = threading.Thread(target=serve, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the exporter's session keeps its connection alive

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.sink.exports.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse: all accepted
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per export would interleave with the bench's output."""
