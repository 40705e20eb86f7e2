"""Traces, on: one trace per request, its server span named by the route template with its status
and the actor's kind, the request's SQL as child spans (statements, never their values), no
credential, cookie or query value in any attribute; off (the default), nothing of OpenTelemetry is
imported (tests/test_metrics.py checks `sys.modules` in a fresh process)."""

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from opentelemetry.trace import SpanKind

from app.api.main import create_app
from app.infrastructure import tracing
from app.infrastructure.config import Settings
from tests.helpers import settings_for
from tests.tracing_helpers import spans  # noqa: F401 (a fixture)


def _values(span: Any) -> list[str]:
    return [str(value) for value in (span.attributes or {}).values()]


def test_one_trace_per_request_with_its_sql_and_no_secret(
    spans: Any,  # noqa: F811
    settings: Settings,
    as_user: Callable,
) -> None:
    user, headers = as_user(email="grace.hopper@example.com")
    key = headers["X-API-Key"]
    app = create_app(settings_for(settings.database_url))
    with TestClient(app) as client:
        first = client.get("/api/users/me?token=query-secret", headers={**headers, "Cookie": "__session=cookie-secret"})
        second = client.get(f"/api/users/{user.id}", headers=headers)
    assert first.status_code == second.status_code == 200
    finished = spans.get_finished_spans()
    servers = [span for span in finished if span.kind is SpanKind.SERVER]
    assert [span.name for span in servers] == ["GET /api/users/me", "GET /api/users/{user_id}"]
    assert len({span.context.trace_id for span in servers}) == 2  # a trace each
    for server in servers:
        attributes = dict(server.attributes or {})
        assert attributes["app.actor.kind"] == "api_key"
        assert attributes.get("http.status_code", attributes.get("http.response.status_code")) == 200
        assert "query-secret" not in " ".join(_values(server))
        sql = [
            span
            for span in finished
            if span.context.trace_id == server.context.trace_id and span.kind is SpanKind.CLIENT
        ]
        assert sql, "the request's statements are child spans"
        for statement in sql:
            attributes = dict(statement.attributes or {})
            text = str(attributes.get("db.statement") or attributes.get("db.query.text") or "")
            assert text.split()[:1] in (["SELECT"], ["UPDATE"], ["INSERT"]), text
    every_value = " ".join(value for span in finished for value in _values(span))
    every_name = " ".join(name.lower() for span in finished for name in (span.attributes or {}))
    for secret in (key, key[:12], "cookie-secret", "query-secret", "grace.hopper@example.com"):
        assert secret not in every_value, secret
    statements = " ".join(value for span in finished if span.kind is SpanKind.CLIENT for value in _values(span))
    assert str(user.id) not in statements  # the path has it; a statement has its placeholder
    assert user.id.hex not in statements
    assert "authorization" not in every_name
    assert "cookie" not in every_name
    assert "x-api-key" not in every_name
    assert tracing.current_traceparent() is None  # no span outside a request


@pytest.mark.parametrize(
    ("environment", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "api"}, False),  # a name alone sends nothing anywhere
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ],
)
def test_traces_are_on_only_with_an_endpoint_and_not_disabled(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], on: bool
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert tracing.enabled() is on
