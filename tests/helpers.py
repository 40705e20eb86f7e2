"""Helpers shared by tests (fixtures live in conftest.py)."""

import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from alembic.config import Config
from litestar import Litestar
from sqlalchemy import event, make_url

from app.infrastructure.config import PROJECT_ROOT, Settings
from app.infrastructure.database import Database

CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 1024}


def alembic_config(connection: object | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def settings_for(database_url: str, **overrides: object) -> Settings:
    """Settings that ignore the developer's `.env`, with cheap argon2 parameters."""
    return Settings(_env_file=None, database_url=database_url, **CHEAP_ARGON2, **overrides)


def served_operations(app: Litestar, *, documented_only: bool = True) -> set[tuple[str, str]]:
    """(method, path) of every operation the app serves, read from its routes, in the OpenAPI's
    spelling (`get`, `/api/users/{user_id}`): what a new domain's routes add to, with no count to
    edit. OPTIONS (Litestar's own) is left out, and with `documented_only` the routes left out of
    the OpenAPI document (its own pages)."""
    return {
        (method.lower(), re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path))
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.resolve_include_in_schema() or not documented_only
        for method in handler.http_methods - {"OPTIONS"}
    }


def backend_name(settings: Settings) -> str:
    return make_url(settings.database_url).get_backend_name()


@contextmanager
def recorded(database: Database) -> Iterator[dict[str, list[str]]]:
    """The SQL statements run, and the threads that returned connections to the pool."""
    seen: dict[str, list[str]] = {"statements": [], "checkin_threads": [], "autocommit": []}

    def on_execute(_conn, cursor, statement: str, *_: object) -> None:
        seen["statements"].append(statement.split(maxsplit=1)[0].upper())
        if not isinstance(cursor.connection, sqlite3.Connection):
            seen["autocommit"].append(str(cursor.connection.autocommit))  # psycopg2

    def on_checkin(*_: object) -> None:
        seen["checkin_threads"].append(threading.current_thread().name)

    event.listen(database.engine, "before_cursor_execute", on_execute)
    event.listen(database.engine.pool, "checkin", on_checkin)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", on_execute)
        event.remove(database.engine.pool, "checkin", on_checkin)


def wait_until_healthy(server: subprocess.Popen, base_url: str, timeout: float = 30) -> None:
    """Until the live server answers /health with 200; fails if it exits or takes longer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
