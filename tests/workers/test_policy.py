"""Which errors a task retries: each one raised for real by SQLite, PostgreSQL, the connection pool
or httpx, then classified (app/workers/policy.py)."""

import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prefect.states import Failed
from sqlalchemy import create_engine, text

from app.infrastructure.clerk_backend_api import ClerkAPIError
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from app.workers.policy import is_transient, retry_transient
from tests.helpers import backend_name


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raised(call: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as caught:  # noqa: PT011 (whatever the driver raises)
        call()
    return caught.value


def test_sqlite_locked_is_transient_and_a_missing_table_is_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    holder = sqlite3.connect(tmp_path / "db.sqlite")
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(url, connect_args={"timeout": 0.1})
    try:
        with engine.begin() as connection:
            locked = raised(lambda: connection.execute(text("INSERT INTO t VALUES (1)")))
            missing = raised(lambda: connection.execute(text("SELECT * FROM nowhere")))
    finally:
        holder.close()
        engine.dispose()
    assert "database is locked" in str(locked)
    assert is_transient(locked)
    assert "no such table" in str(missing)
    assert not is_transient(missing)  # sqlite3 calls it an OperationalError too


def test_a_refused_connection_and_an_empty_pool_are_transient(tmp_path: Path) -> None:
    refused = raised(lambda: create_engine(f"postgresql+psycopg2://app@127.0.0.1:{closed_port()}/app").connect())
    assert is_transient(refused)
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.sqlite'}", pool_size=1, max_overflow=0, pool_timeout=0.1)
    with engine.connect():
        no_connection = raised(engine.connect)
    engine.dispose()
    assert "QueuePool limit" in str(no_connection)
    assert is_transient(no_connection)


def test_http_transport_errors_are_transient_refusals_are_not() -> None:
    assert is_transient(raised(lambda: httpx.get(f"http://127.0.0.1:{closed_port()}/", timeout=2)))
    assert not is_transient(ClerkAPIError("Clerk API: GET /users failed 5 times, last with HTTP 503", 503))
    response = httpx.Response(404, request=httpx.Request("GET", "http://clerk.test/"))
    assert not is_transient(raised(response.raise_for_status))
    assert not is_transient(ValueError("a bug"))
    assert not is_transient(TimeoutError("Task run exceeded its timeout"))  # it would time out again


def test_postgresql_timeouts_deadlocks_and_dropped_connections_are_transient_bad_sql_is_not(
    settings: Settings, database: Database
) -> None:
    if backend_name(settings) != "postgresql":
        pytest.skip("PostgreSQL's errors")
    with database.engine.connect() as connection:
        connection.execute(text("SET statement_timeout = '50ms'"))
        timed_out = raised(lambda: connection.execute(text("SELECT pg_sleep(1)")))
    with database.engine.connect() as connection:
        undefined = raised(lambda: connection.execute(text("SELECT * FROM nowhere")))
    with database.engine.connect() as connection:
        dropped = raised(lambda: connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())")))
    assert "canceling statement due to statement timeout" in str(timed_out)
    assert is_transient(timed_out)
    assert "does not exist" in str(undefined)
    assert not is_transient(undefined)
    assert is_transient(dropped)


def test_the_retry_condition_reads_the_failed_state() -> None:
    assert retry_transient(None, None, Failed(data=httpx.ConnectError("refused")))  # type: ignore[arg-type]
    assert not retry_transient(None, None, Failed(data=ValueError("a bug")))  # type: ignore[arg-type]
    assert not retry_transient(None, None, Failed(message="no exception"))  # type: ignore[arg-type]
