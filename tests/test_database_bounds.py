"""Every database call is bounded, outages are told from bugs, and parameters never reach the logs.

The live faults (a stopped, frozen, late database under load) are in tests/test_database_faults.py;
these cover the pieces: a server that never answers is simulated by a socket nobody serves.
"""

import contextlib
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from advanced_alchemy import exceptions as aa_exc
from psycopg2 import extensions
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from app.infrastructure.config import Settings
from app.infrastructure.database import Database, build_engine
from app.infrastructure.database_errors import ConnectionGate, describe_database_error, is_outage, redacted_traceback
from app.infrastructure.postgres import BoundedConnection, DeadlineExceeded, wait_with_deadline
from tests.helpers import backend_name, settings_for


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A PostgreSQL URL whose server accepts connections (the kernel does) and never answers:
    what a frozen server looks like from the client."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"postgresql+psycopg2://app@127.0.0.1:{listener.getsockname()[1]}/app"


def test_every_connection_is_bounded(database: Database, settings: Settings) -> None:
    assert database.engine.pool.timeout() == settings.database_pool_timeout == 5
    with database.engine.connect() as connection:
        dbapi_connection = connection.connection.dbapi_connection
        if backend_name(settings) == "sqlite":
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            return
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "5s"
    assert isinstance(dbapi_connection, BoundedConnection)
    assert (dbapi_connection.connect_deadline, dbapi_connection.statement_deadline) == (5, 6)
    parameters = dbapi_connection.get_dsn_parameters()
    assert parameters["connect_timeout"] == "5"
    assert parameters["keepalives"] == "1"
    assert int(parameters["tcp_user_timeout"]) == 10_000
    assert extensions.get_wait_callback() is wait_with_deadline


def test_a_statement_past_the_timeout_is_cancelled_and_is_an_outage(settings: Settings, tmp_path: Path) -> None:
    """PostgreSQL cancels it; on SQLite, the wait for another writer's lock gives up."""
    if backend_name(settings) == "sqlite":
        url = f"sqlite:///{tmp_path / 'locked.db'}"
        statement = "INSERT INTO t VALUES (1)"
    else:
        url = settings.database_url
        statement = "SELECT pg_sleep(5)"
    database = Database(settings_for(url, database_statement_timeout_seconds=0.3))
    try:
        with database.engine.connect() as holder:
            if backend_name(settings) == "sqlite":
                holder.exec_driver_sql("CREATE TABLE t (x)")
                holder.commit()
                holder.exec_driver_sql("BEGIN IMMEDIATE")  # holds the write lock
            other = Database(settings_for(url, database_statement_timeout_seconds=0.3))
            started = time.monotonic()
            with pytest.raises(sa_exc.OperationalError) as raised, other.engine.connect() as connection:
                connection.exec_driver_sql(statement)
            elapsed = time.monotonic() - started
            other.dispose()
    finally:
        database.dispose()
    assert 0.25 < elapsed < 1.5
    assert is_outage(raised.value)


def test_migrations_run_without_a_statement_timeout(settings: Settings) -> None:
    if backend_name(settings) == "sqlite":
        return
    engine = build_engine(settings, statement_timeout=None)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "0"
            assert connection.connection.dbapi_connection.statement_deadline is None
    finally:
        engine.dispose()


def test_statement_parameters_never_reach_errors_or_logs(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    """Parameters are personal data (e-mails, names). SQLAlchemy hides them (`hide_parameters`) in
    its errors and its echo; psycopg2 binds them on the client, so PostgreSQL's own message quotes
    them back (`LINE 1: SELECT 'ada...'`): what the app logs of a database error is redacted."""
    secret = "-".join(["ada", "lovelace", "1815"])  # not in this file's source (tracebacks show code)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    with database.engine.connect() as connection:
        connection.execute(text("SELECT :name"), {"name": secret})  # echoed at INFO: parameters hidden
        with pytest.raises(sa_exc.DBAPIError) as raised:
            connection.execute(text("SELECT :name FROM no_such_table"), {"name": secret})
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(raised.value)
    assert "SQL parameters hidden" in caplog.text
    assert secret not in caplog.text
    logged = f"{describe_database_error(raised.value)}\n{redacted_traceback(raised.value)}"
    assert "[SQL: SELECT " in logged
    assert "no_such_table" in logged
    assert secret not in logged


def test_a_server_that_never_answers_costs_the_connect_timeout(silent_server: str) -> None:
    database = Database(settings_for(silent_server, database_connect_timeout_seconds=0.5))
    started = time.monotonic()
    try:
        with pytest.raises(sa_exc.OperationalError) as raised:
            database.engine.connect()
    finally:
        database.dispose()
    assert 0.4 < time.monotonic() - started < 1.5
    assert is_outage(raised.value)
    assert (
        describe_database_error(raised.value)
        == "DeadlineExceeded: the database did not answer within 0.5 s (connecting)"
    )


def test_while_the_database_is_down_one_connection_attempt_at_a_time(silent_server: str) -> None:
    """Once a connection attempt failed, the others fail at once while one attempt is under way:
    threads do not queue for a connect timeout each."""
    database = Database(settings_for(silent_server, database_connect_timeout_seconds=0.5))
    try:
        with pytest.raises(sa_exc.OperationalError):
            database.engine.connect()  # the database is known to be down
        errors: list[BaseException] = []

        def attempt() -> None:
            try:
                database.engine.connect()
            except sa_exc.OperationalError as error:
                errors.append(error)

        probe = threading.Thread(target=attempt)
        probe.start()
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(sa_exc.OperationalError, match="another connection attempt is under way") as raised:
            database.engine.connect()
        assert time.monotonic() - started < 0.1
        assert is_outage(raised.value)
        probe.join(timeout=5)
        assert len(errors) == 1
        assert "did not answer" in str(errors[0])
    finally:
        database.dispose()


class _Dialect:
    """Connects by running the callable it is given (`cparams["attempt"]`)."""

    def connect(self, attempt: Callable[[], object]) -> object:
        return attempt()


def test_the_gate_lets_one_attempt_through_at_a_time_until_one_succeeds() -> None:
    gate = ConnectionGate(RuntimeError)

    def refused() -> object:
        raise OSError("refused")

    def attempt(run: Callable[[], object]) -> object:
        return gate(_Dialect(), None, (), {"attempt": run})

    def in_thread(outcome: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
        """An attempt under way in another thread: it finishes with `outcome` when released."""
        entered, release = threading.Event(), threading.Event()

        def run() -> object:
            entered.set()
            release.wait(5)
            return outcome()

        def target() -> None:
            with contextlib.suppress(OSError):
                attempt(run)

        thread = threading.Thread(target=target)
        thread.start()
        assert entered.wait(5)
        return thread, release

    before_the_outage, slow = in_thread(refused)  # under way while the database was still up
    with pytest.raises(OSError, match="refused"):
        attempt(refused)  # the database is down now
    probe, answer = in_thread(lambda: "connection")  # the one attempt let through
    slow.set()
    before_the_outage.join(5)  # its failure must not open the gate while the probe is under way
    with pytest.raises(RuntimeError, match="another connection attempt"):
        attempt(lambda: "connection")
    answer.set()
    probe.join(5)
    assert gate.down_since is None
    assert attempt(lambda: "connection") == "connection"


class _SilentConnection:
    """What psycopg2 hands the wait callback while a query waits for a server that never answers."""

    statement_deadline = 0.3
    connecting = False

    def __init__(self) -> None:
        self.ours, self.theirs = socket.socketpair()

    def poll(self) -> int:
        return extensions.POLL_READ

    def fileno(self) -> int:
        return self.ours.fileno()


def test_a_statement_the_server_never_answers_gives_up_at_its_deadline() -> None:
    connection = _SilentConnection()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"within 0.3 s \(waiting for a statement\)"):
        wait_with_deadline(connection)
    assert 0.25 < time.monotonic() - started < 1
    connection.theirs.send(b"x")  # an answer: the wait ends as soon as the connection is ready
    connection.poll = lambda: extensions.POLL_OK  # type: ignore[method-assign]
    wait_with_deadline(connection)


def _caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


def _context_only(error: BaseException, context: BaseException) -> BaseException:
    error.__context__ = context
    return error


def _operational() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", None, psycopg2.OperationalError("server closed the connection"))


def _sqlite_error(statement: str) -> sqlite3.Error:
    """What SQLite itself raises for the statement (with its result code)."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute(statement)
    except sqlite3.Error as error:
        return error
    finally:
        connection.close()
    raise AssertionError(f"{statement!r} ran")


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (_operational(), True),
        (sa_exc.OperationalError("SELECT 1", None, psycopg2.errors.QueryCanceled("statement timeout")), True),
        (sa_exc.TimeoutError("QueuePool limit of size 4 overflow 0 reached"), True),
        (sa_exc.InterfaceError("SELECT 1", None, Exception("closed"), connection_invalidated=True), True),
        (sa_exc.InterfaceError("SELECT 1", None, psycopg2.InterfaceError("connection already closed")), True),
        (_caused(aa_exc.IntegrityError("wrapped"), _operational()), True),
        (_caused(aa_exc.RepositoryError("wrapped"), _caused(RuntimeError("x"), _operational())), True),
        (psycopg2.InterfaceError("connection already closed"), True),
        (DeadlineExceeded("the database did not answer"), True),
        (sqlite3.OperationalError("database is locked"), True),
        # SQLite says OperationalError for a statement it cannot run too: a bug, not an outage.
        (_sqlite_error("SELECT * FROM no_such_table"), False),
        (sa_exc.OperationalError("SELECT", None, _sqlite_error("SELECT * FROM no_such_table")), False),
        (sa_exc.OperationalError("SELEC", None, _sqlite_error("SELEC 1")), False),
        (sa_exc.InterfaceError("SELECT ?", None, sqlite3.InterfaceError("Error binding parameter 1")), False),
        (sa_exc.IntegrityError("INSERT", None, psycopg2.IntegrityError("duplicate key")), False),
        (_caused(aa_exc.IntegrityError("wrapped"), sa_exc.IntegrityError("INSERT", None, Exception())), False),
        (sa_exc.ProgrammingError("SELECT", None, psycopg2.ProgrammingError("syntax error")), False),
        (_context_only(KeyError("a bug while handling an outage"), _operational()), False),
        (ValueError("a bug"), False),
    ],
)
def test_outages_are_told_from_bugs(error: BaseException, outage: bool) -> None:
    assert is_outage(error) is outage


def test_describe_names_the_driver_error_in_one_line() -> None:
    error = _caused(aa_exc.IntegrityError("wrapped"), _operational())
    assert describe_database_error(error) == "OperationalError: server closed the connection"
    assert describe_database_error(ValueError()) == "ValueError"


def test_a_postgresql_error_is_described_by_its_codes_not_its_message(settings: Settings) -> None:
    """PostgreSQL quotes values in messages and details: `invalid input syntax for type uuid: "..."`."""
    if backend_name(settings) == "sqlite":
        return
    secret = "-".join(["grace", "hopper"])
    database = Database(settings)
    try:
        with pytest.raises(sa_exc.DataError) as raised, database.engine.connect() as connection:
            connection.execute(text("SELECT CAST(:value AS uuid)"), {"value": secret})
    finally:
        database.dispose()
    assert secret in str(raised.value.orig)  # what the server said
    assert describe_database_error(raised.value) == "InvalidTextRepresentation (SQLSTATE 22P02)"
    assert secret not in redacted_traceback(raised.value)
