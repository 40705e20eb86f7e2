"""The Litestar app factory: `uvicorn --factory app.api.main:create_app`."""

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.logging import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.routes import HTTPRoute
from pydantic import BaseModel

from app.api.auth import CredentialMiddleware
from app.api.controllers import controllers
from app.api.dependencies import app_dependencies
from app.api.docs import DOCS_PATH, docs_assets, docs_pages, docs_router
from app.api.openapi import openapi_config
from app.api.problems import exception_handlers
from app.api.request_body import API_MAX_BODY_BYTES, BodyDeadline
from app.api.request_log import AccessLog, RequestObserver
from app.api.route_decorators import ensure_every_route_verifies_credentials
from app.api.tracing import name_span_by_route, tracing_plugin
from app.bootstrap import Container, bootstrap
from app.infrastructure import tracing
from app.infrastructure.config import Settings
from app.infrastructure.log_format import (
    BackgroundStreamHandler,
    JsonFormatter,
    ReadableFormatter,
    flush_logs,
    lean_log_records,
)


def pydantic_as_json(model: BaseModel) -> msgspec.Raw:
    """Responses' schemas are serialised by pydantic-core straight to JSON: Litestar's default
    dumps each to a dict and encodes that again (3x the CPU for a page of 50 users)."""
    return msgspec.Raw(model.__pydantic_serializer__.to_json(model))


def logging_config(settings: Settings) -> LoggingConfig:
    """JSON lines outside development, readable lines in development, written to stderr off the
    event loop (`BackgroundStreamHandler`; Litestar's own logger uses it under its handler's name).
    Uvicorn's own lines use the same format, and its access log is off: the app writes its own
    (`app.api.request_log`)."""
    formatter = ReadableFormatter if settings.is_development else JsonFormatter
    handler = {"()": BackgroundStreamHandler, "formatter": "standard"}
    return LoggingConfig(
        formatters={"standard": {"()": formatter}},
        handlers={"queue_listener": handler},
        root={"level": settings.log_level, "handlers": ["queue_listener"]},
        loggers={
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    )


def allow_every_method(app: Litestar) -> None:
    """`OPTIONS` answers `Allow` with every method of its path. Litestar's generated OPTIONS handler
    reads the methods of the route it was made for, but registering a controller rebuilds each route
    around the same handlers, so it kept an older route's (`Allow: OPTIONS, POST` on /api/users,
    which also serves GET): point each at the route that serves it."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.handler_name == "options_handler":
                for cell in handler.fn.__closure__ or ():
                    if isinstance(cell.cell_contents, HTTPRoute):
                        cell.cell_contents = route


def freeze_startup_objects() -> None:
    """Move what start-up built (modules, routes, models: some hundred thousand objects) out of the
    garbage collector's sight, once per process: a full collection no longer walks them all, which
    cost ~40 µs per request and doubled the p99 under load (measured). `gc.freeze` is meant for this."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class App(Litestar):
    @staticmethod
    def _patch_opentelemetry_middleware(config: Any) -> Any:
        """Litestar imports its OpenTelemetry plugin for every app, to move OpenTelemetry middleware
        passed by hand in front of the others: we pass none (tracing is the plugin's, when on: see
        app/api/tracing.py), and that import would load OpenTelemetry with tracing off."""
        return config


def create_app(settings: Settings | None = None, container: Container | None = None) -> Litestar:
    if tracing.enabled():  # before the container: its HTTP clients are traced too
        tracing.configure("app-api")
    container = container or bootstrap(settings)
    settings = container.settings
    plugins = []
    if tracing.enabled():
        tracing.instrument_engine(container.database.engine)
        plugins.append(tracing_plugin())
    lean_log_records()  # every request logs a record: build it with no more than the formats show

    async def size_worker_pool() -> None:
        """Sync handlers run in the loop's default executor: one thread per pooled connection."""
        executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="worker")
        asyncio.get_running_loop().set_default_executor(executor)

    app = App(
        route_handlers=[*controllers, docs_assets],
        dependencies=app_dependencies,
        middleware=[DefineMiddleware(CredentialMiddleware, exclude=[f"^{DOCS_PATH}"])],
        exception_handlers=exception_handlers,
        type_encoders={BaseModel: pydantic_as_json},
        on_startup=[size_worker_pool, freeze_startup_objects],
        on_shutdown=[container.dispose, flush_logs],
        state=State({"container": container}),
        openapi_config=openapi_config(docs_pages(), DOCS_PATH, openapi_router=docs_router()),
        logging_config=logging_config(settings),
        request_max_body_size=API_MAX_BODY_BYTES,
        plugins=plugins,
        before_request=name_span_by_route if plugins else None,
        debug=False,
    )
    ensure_every_route_verifies_credentials(app)
    allow_every_method(app)
    app.asgi_handler = BodyDeadline(app.asgi_handler, settings.request_body_timeout_seconds)
    observe = enable_metrics(app, container) if settings.metrics_enabled else None
    app.asgi_handler = AccessLog(app.asgi_handler, observe)  # outermost: sees the router's 404s too
    return app


def enable_metrics(app: Litestar, container: Container) -> RequestObserver:
    """Prometheus metrics (imported only now): the request observer for the access layer, the pool's
    gauges, and the metrics port served from this process while the app runs."""
    from app.infrastructure import prometheus  # noqa: PLC0415

    settings = container.settings
    recorder = prometheus.enable(settings)
    recorder.sample_pool(container.database.engine.pool)
    servers = []

    async def serve_metrics() -> None:
        servers.append(prometheus.serve(settings.metrics_host, settings.metrics_port))

    async def stop_metrics() -> None:
        for server in servers:
            server.shutdown()
            server.server_close()
        prometheus.process_stopped()

    app.on_startup.append(serve_metrics)
    app.on_shutdown.insert(0, stop_metrics)
    return recorder.observe_request
