"""Traces in memory: the process's tracer provider (set once per process, as OpenTelemetry allows)
with an in-memory exporter, and the app's switch (OTEL_EXPORTER_OTLP_ENDPOINT) on for one test."""

from collections.abc import Iterator
from typing import Any

import pytest

from app.infrastructure import tracing

_exporter: Any = None


def memory_exporter() -> Any:
    global _exporter  # noqa: PLW0603
    if _exporter is None:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        _exporter = InMemorySpanExporter()
        tracing.configure("app-tests", SimpleSpanProcessor(_exporter))
    return _exporter


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Traces on for the apps this test creates; their spans in the returned exporter."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    exporter = memory_exporter()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")  # never reached: spans stay in memory
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument()
    exporter.clear()
    yield exporter
    exporter.clear()
    HTTPXClientInstrumentor().uninstrument()  # the test clients of the tests that follow make no spans
