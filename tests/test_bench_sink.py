"""`task bench`'s no-op OpenTelemetry collector (bench/sink.py) receives what the app's exporter sends."""

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.load import LoadResult
from bench.report import Scenario, Target, markdown
from bench.sink import otlp_sink


def test_the_sink_accepts_the_apps_otlp_http_exports_and_counts_their_spans() -> None:
    with otlp_sink(cpu=None) as sink:
        provider = TracerProvider()  # not the global one: the tracing tests own that
        # The exporter the app uses (app/infrastructure/tracing.py), given the endpoint the bench sets.
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.url}/v1/traces")))
        tracer = provider.get_tracer("bench-test")
        for name in ("GET /api/users/me", "SELECT"):
            with tracer.start_as_current_span(name):
                pass
        provider.shutdown()
        assert len(sink.exports) == 2
        assert sink.spans() == 2


def test_a_variant_is_quoted_against_the_bare_app_and_the_app_with_observability_off() -> None:
    bare, off, metered = (
        LoadResult(rate, rate, 1.0, 10.0, 20.0, cpu_us=us) for rate, us in ((1000, 500), (900, 600), (855, 640))
    )
    rows = [Scenario("/me, Clerk token", off, bare), Scenario("/me, Clerk token, metrics on", metered, bare, off=off)]
    quoted = Target("tracing on vs off", "— (quoted)", "0.80x", None)

    text = markdown({"date": "today"}, rows, [quoted], [])

    assert "| /me, Clerk token | 900 | 10.00 | 20.00 | 1000 | 0.90x | — | 600 µs | 500 µs |" in text
    assert "| /me, Clerk token, metrics on | 855 | 10.00 | 20.00 | 1000 | 0.85x | 0.95x | 640 µs | 500 µs |" in text
    assert "| tracing on vs off | — (quoted) | 0.80x | quoted |" in text
