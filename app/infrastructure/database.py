"""Engine and session factory.

One `Database` per process (the app, the CLI or a worker builds it from settings and disposes it).
Sessions never autoflush surprises into other threads: a session is opened, used and closed by the
code that needs it, and `expire_on_commit=False` keeps loaded rows readable after a commit.
"""

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.infrastructure.config import Settings


def build_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    options: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": 0,  # overflow connections churn under load; size the pool instead
        "pool_timeout": settings.database_pool_timeout,
        # No pre-ping: it costs a round trip per checkout. Old connections are recycled, and a
        # connection found dead invalidates the whole pool at once (one failed request per outage).
        "pool_recycle": settings.database_pool_recycle_seconds,
    }
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **options)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
    return create_engine(url, connect_args=connect_args, **options)


# Reads need no transaction: on PostgreSQL a read session's statements commit one by one, so a read
# costs its own round trip and no BEGIN/COMMIT (READ COMMITTED gives each statement its own snapshot
# anyway). psycopg2's `autocommit` attribute switches on the client, with no round trip; SQLAlchemy's
# AUTOCOMMIT isolation level would send `SET default_transaction_isolation` on every return to the
# pool. (SQLite's driver starts no transaction before a SELECT: nothing to gain there.)


def _autocommit_on(_session: Session, _transaction: Any, connection: Connection) -> None:
    connection.connection.dbapi_connection.autocommit = True  # before its first statement


def _autocommit_off(dbapi_connection: Any, _record: Any, _reset_state: Any) -> None:
    if dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    def __init__(self, settings: Settings) -> None:
        self.engine = build_engine(settings)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.read_session_factory = self.session_factory
        if self.engine.dialect.name == "postgresql":
            self.read_session_factory = sessionmaker(self.engine, expire_on_commit=False)
            event.listen(self.read_session_factory, "after_begin", _autocommit_on)
            event.listen(self.engine, "reset", _autocommit_off)

    def session(self) -> Session:
        """A new session; it checks out a connection only when first used."""
        return self.session_factory()

    def dispose(self) -> None:
        self.engine.dispose()
