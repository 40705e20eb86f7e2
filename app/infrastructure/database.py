"""Engine and session factory.

One `Database` per process (the app, the CLI or a worker builds it from settings and disposes it).
Sessions never autoflush surprises into other threads: a session is opened, used and closed by the
code that needs it, and `expire_on_commit=False` keeps loaded rows readable after a commit.
"""

import math
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.infrastructure.config import Settings
from app.infrastructure.database_errors import ConnectionGate

# The readiness probe's own bounds: it answers within a second whatever the database does.
PROBE_TIMEOUT_SECONDS = 0.5

_FROM_SETTINGS: Any = object()


def build_engine(
    settings: Settings,
    *,
    statement_timeout: float | None = _FROM_SETTINGS,
    connect_timeout: float | None = None,
    pool_size: int | None = None,
) -> Engine:
    """The engine of `settings`. Every call is bounded: connecting by `connect_timeout`
    (DATABASE_CONNECT_TIMEOUT_SECONDS), every statement by `statement_timeout`
    (DATABASE_STATEMENT_TIMEOUT_SECONDS; `None` for no bound: migrations), waiting for a pooled
    connection by DATABASE_POOL_TIMEOUT."""
    url = make_url(settings.database_url)
    if statement_timeout is _FROM_SETTINGS:
        statement_timeout = settings.database_statement_timeout_seconds
    connect_timeout = connect_timeout or settings.database_connect_timeout_seconds
    options: dict[str, Any] = {
        "pool_size": pool_size or settings.pool_size,
        "max_overflow": 0,  # overflow connections churn under load; size the pool instead
        "pool_timeout": settings.database_pool_timeout,
        # No pre-ping: it costs a round trip per checkout. Old connections are recycled, and a
        # connection found dead invalidates the whole pool at once (one failed request per outage).
        "pool_recycle": settings.database_pool_recycle_seconds,
        # Errors and logs show the SQL but never its parameters: they are personal data.
        "hide_parameters": True,
    }
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _writable_folder(Path(url.database).parent)
        # SQLite has no statement timeout; its busy timeout bounds the wait for another writer's lock.
        busy_timeout = statement_timeout or settings.database_statement_timeout_seconds
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout}, **options)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": max(2, math.ceil(connect_timeout))}
        if url.get_driver_name() == "psycopg2":
            from app.infrastructure import postgres  # noqa: PLC0415 (psycopg2 only when it is used)

            connect_args = postgres.connect_args(dict(url.query), connect_timeout, statement_timeout)
    engine = create_engine(url, connect_args=connect_args, **options)
    event.listen(engine, "do_connect", ConnectionGate(engine.dialect.loaded_dbapi.OperationalError))
    return engine


def _writable_folder(folder: Path) -> None:
    """SQLite needs its folder (the file, and WAL's -wal and -shm beside it). A folder that cannot be
    made or written stops the process with one line, not a traceback: the `api` image run with no
    settings lands here (its default path is under the read-only code)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError as error:
        writable, reason = False, error.strerror or type(error).__name__
    else:
        reason = "not writable"
    if not writable:
        raise SystemExit(
            f"invalid settings: DATABASE_URL: the SQLite folder {folder} cannot be used ({reason}); "
            "set DATABASE_URL to PostgreSQL (with ENVIRONMENT=production), or to a writable SQLite path"
        )


# Reads need no transaction: on PostgreSQL a read session's statements commit one by one, so a read
# costs its own round trip and no BEGIN/COMMIT (READ COMMITTED gives each statement its own snapshot
# anyway). psycopg2's `autocommit` attribute switches on the client, with no round trip; SQLAlchemy's
# AUTOCOMMIT isolation level would send `SET default_transaction_isolation` on every return to the
# pool. (SQLite's driver starts no transaction before a SELECT: nothing to gain there.)


def _autocommit_on(_session: Session, _transaction: Any, connection: Connection) -> None:
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None:  # None only once invalidated: its next statement fails anyway
        dbapi_connection.autocommit = True  # before its first statement


def _autocommit_off(dbapi_connection: Any, _record: Any, _reset_state: Any) -> None:
    if dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = build_engine(settings)
        self._probe_engine: Engine | None = None
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.read_session_factory = self.session_factory
        if self.engine.dialect.name == "postgresql":
            self.read_session_factory = sessionmaker(self.engine, expire_on_commit=False)
            event.listen(self.read_session_factory, "after_begin", _autocommit_on)
            event.listen(self.engine, "reset", _autocommit_off)

    @property
    def probe_engine(self) -> Engine:
        """A one-connection engine of its own for the readiness probe, with short bounds: a probe
        neither waits for the request pool nor waits long (see `ping`)."""
        if self._probe_engine is None:
            self._probe_engine = build_engine(
                self.settings,
                statement_timeout=PROBE_TIMEOUT_SECONDS,
                connect_timeout=PROBE_TIMEOUT_SECONDS,
                pool_size=1,
            )
        return self._probe_engine

    def ping(self) -> None:
        """Raise unless the database answers a query (within about PROBE_TIMEOUT_SECONDS per step)."""
        for attempt in (1, 2):
            try:
                with self.probe_engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return
            except DBAPIError as error:  # a pooled connection the database dropped: try a new one, once
                if attempt == 2 or not error.connection_invalidated:
                    raise

    def session(self) -> Session:
        """A new session; it checks out a connection only when first used."""
        return self.session_factory()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._probe_engine is not None:
            self._probe_engine.dispose()
