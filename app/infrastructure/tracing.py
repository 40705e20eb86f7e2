"""OpenTelemetry traces: off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set,
and OTEL_SDK_DISABLED is not `true`. The OpenTelemetry SDK reads its own variables (the endpoint,
OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, headers...); nothing of it is imported while traces are off,
so the request path and the start pay nothing.

When on (`configure`, once per process, by the API's `create_app` and the worker's container):
spans go to the OTLP/HTTP exporter in batches; each SQL statement is a child span whose text is
the statement with its placeholders (SQLAlchemy's instrumentation never records parameters, and
its SQL commenter stays off); each outbound HTTP call (Clerk's JWKS, its Backend API) is a span. The
API's request spans are Litestar's OpenTelemetry plugin's (app/api/tracing.py). A queued job keeps
its request's `traceparent` (`current_traceparent`), and the worker's span for it links to it.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_configured = False
_instrumented_engines: set[int] = set()


def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def is_configured() -> bool:
    return _configured


def configure(service_name: str, span_processor: Any = None) -> None:
    """The tracer provider (OTEL_SERVICE_NAME wins over `service_name`), its exporter, and the
    httpx instrumentation. `span_processor`: another destination than OTLP (the tests' memory)."""
    global _configured  # noqa: PLW0603
    if _configured:
        return
    from opentelemetry import trace  # noqa: PLC0415 (imported only when traces are on)
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    if span_processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        span_processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(span_processor)
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()  # clients made from now on; no header is recorded
    _configured = True


def instrument_engine(engine: Any) -> None:
    """One span per statement on this engine: the statement's text, never its parameters."""
    if not _configured or id(engine) in _instrumented_engines:
        return
    from opentelemetry import metrics, trace  # noqa: PLC0415
    from opentelemetry.instrumentation.sqlalchemy import __name__ as instrumentation  # noqa: PLC0415
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: PLC0415

    usage = metrics.get_meter(instrumentation).create_up_down_counter("db.client.connections.usage")
    EngineTracer(trace.get_tracer(instrumentation), engine, usage, enable_commenter=False)  # type: ignore[no-untyped-call]
    _instrumented_engines.add(id(engine))


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (to store with a queued job), or None."""
    if not _configured:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: PLC0415

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def linked_span(name: str, traceparent: str | None, **attributes: str) -> Iterator[None]:
    """A new trace's span for work started elsewhere (a job), linked to the trace that started it."""
    if not _configured:
        yield
        return
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: PLC0415

    links = []
    if traceparent:
        origin = trace.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
        if origin.get_span_context().is_valid:
            links.append(trace.Link(origin.get_span_context()))
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span(name, context=trace.set_span_in_context(trace.INVALID_SPAN), links=links) as span:
        span.set_attributes(attributes)
        yield


def set_actor(kind: str) -> None:
    """The kind of actor the current request authenticated as (never its credential)."""
    if not _configured:
        return
    from opentelemetry import trace  # noqa: PLC0415

    trace.get_current_span().set_attribute("app.actor.kind", kind)
