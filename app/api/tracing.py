"""The API's request spans: Litestar's OpenTelemetry plugin, added only when traces are on
(app/infrastructure/tracing.py).

One span per matched request, named by its route template (`GET /api/users/{user_id}`), with its
status and `app.actor.kind` (how the request authenticated: `api_key`, `session_token`...; set by
`RequestUnitOfWork`). No header is recorded (OpenTelemetry records none unless told to), and the
URL attributes lose their query string, which may carry secrets. The ASGI instrumentation's
per-message `receive`/`send` spans are left out.
"""

from typing import Any

# The attributes of a request's URL that may hold its query, by semantic-conventions version.
URL_ATTRIBUTES = ("http.url", "url.full")
QUERY_ATTRIBUTES = ("http.target", "url.query")


def _without_query(span: Any, scope: Any) -> None:
    """Overwrite what the ASGI instrumentation recorded of the URL with the URL without its query."""
    if not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in URL_ATTRIBUTES:
        if isinstance(value := attributes.get(name), str):
            span.set_attribute(name, value.split("?", 1)[0])
    for name in QUERY_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, scope.get("path", "") if name == "http.target" else "")


def _route_details(scope: Any) -> tuple[str, dict[str, str]]:
    """The span's name until the route is known: the method alone. Litestar's default names it by
    the path (an id in every name, one name per user); the plugin's middleware runs before routing."""
    return str(scope.get("method", "")), {}


async def name_span_by_route(request: Any) -> None:
    """Once routed (a `before_request` hook): `GET /api/users/{user_id}` and its `http.route`."""
    from opentelemetry import trace  # noqa: PLC0415 (loaded already: traces are on)

    route = request.scope.get("path_template")
    span = trace.get_current_span()
    if route and span.is_recording():
        span.update_name(f"{request.method} {route}")
        span.set_attribute("http.route", route)


def tracing_plugin() -> Any:
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin  # noqa: PLC0415

    config = OpenTelemetryConfig(
        scope_span_details_extractor=_route_details,
        server_request_hook_handler=_without_query,
        exclude_spans=["receive", "send"],
    )
    return OpenTelemetryPlugin(config)
