"""Database errors: outages told from bugs, described without personal data; and a gate that keeps
threads from piling onto a database that is down."""

import logging
import sqlite3
import sys
import threading
import time
import traceback
from typing import Any

from sqlalchemy import exc as sa_exc

logger = logging.getLogger(__name__)


def is_outage(error: BaseException | None) -> bool:
    """The database is unreachable, too slow, or dropped the connection: retry later, not a bug.

    A SQLAlchemy error is an outage when it is operational (connection refused, statement timeout,
    no answer, SQLite's locked or unreadable file), a pool timeout, or when SQLAlchemy found the
    connection dead (`connection_invalidated`: psycopg2 reports a closed connection as an
    InterfaceError). Errors of the driver that escaped SQLAlchemy count too, and so does an error
    raised from one of these (explicit chaining, `raise ... from`). SQLite reports a statement it
    cannot run (no such table, a syntax error: result code SQLITE_ERROR) as an OperationalError too:
    that is a bug or a database not migrated, never an outage.
    """
    for _ in range(16):  # a chain is short; a cycle is not followed forever
        if error is None:
            return False
        if isinstance(error, sa_exc.DBAPIError):
            if error.connection_invalidated:
                return True
            if isinstance(error, sa_exc.OperationalError) and not _sqlite_statement_error(error.orig):
                return True
        elif isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError) or _driver_outage(error):
            return True
        error = _cause(error)
    return False


def _cause(error: BaseException) -> BaseException | None:
    if isinstance(error, sa_exc.DBAPIError) and isinstance(error.orig, BaseException):
        return error.orig
    return error.__cause__


def _sqlite_statement_error(error: object) -> bool:
    """SQLite could not run the statement as written (SQLITE_ERROR, the primary code of "no such
    table", "no such column", "syntax error"...), as opposed to being busy, locked or unreadable."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.Error) and code is not None and code & 0xFF == sqlite3.SQLITE_ERROR


def _driver_outage(error: BaseException) -> bool:
    psycopg2 = sys.modules.get("psycopg2")  # imported only when PostgreSQL is used
    if psycopg2 is not None and isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
        return True
    return isinstance(error, sqlite3.OperationalError) and not _sqlite_statement_error(error)


def _driver_error(error: BaseException) -> BaseException:
    """The driver's exception at the bottom of SQLAlchemy's wrapping (and of any `raise ... from`)."""
    for _ in range(16):
        inner = _cause(error)
        if inner is None:
            break
        error = inner
    return error


def describe_database_error(error: BaseException) -> str:
    """One line naming the driver's error, safe to log: no statement parameters, no values.

    psycopg2 binds parameters on the client, so PostgreSQL's messages quote them back (`LINE 1:
    SELECT 'ada@example.com' ...`, `invalid input syntax for type uuid: "..."`, `DETAIL: Key
    (email)=(...)`). Such errors are named by their SQLSTATE and the constraint, table, column or
    type involved. Connection failures (no SQLSTATE), cancelled statements and SQLite's messages
    quote no values: their first line is kept.
    """
    cause = _driver_error(error)
    name = type(cause).__name__
    diagnostics = getattr(cause, "diag", None)
    sqlstate = getattr(diagnostics, "sqlstate", None)
    if sqlstate and not sqlstate.startswith(("08", "53", "57")):  # not connection, resources, operator
        names = ("constraint_name", "table_name", "column_name", "datatype_name")
        found = [f"{field.removesuffix('_name')} {value}" for field in names if (value := getattr(diagnostics, field))]
        return f"{name} (SQLSTATE {', '.join([sqlstate, *found])})"
    lines = str(cause).strip().splitlines()
    return f"{name}: {lines[0]}" if lines else name


def _is_database_error(error: BaseException) -> bool:
    psycopg2 = sys.modules.get("psycopg2")
    drivers = (sqlite3.Error, psycopg2.Error) if psycopg2 is not None else (sqlite3.Error,)
    return isinstance(error, (sa_exc.SQLAlchemyError, *drivers))


def involves_database(error: BaseException) -> bool:
    return any(_is_database_error(link) for link in _chain(error))


def _chain(error: BaseException) -> list[BaseException]:
    chain = [error]
    while len(chain) < 16:
        link = chain[-1]
        following = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
        if following is None or following in chain:
            break
        chain.append(following)
    return chain


def redacted_traceback(error: BaseException) -> str:
    """The traceback of `error` and its causes, as Python prints it, except that the messages of a
    database error and of everything wrapping it (which quote it) are replaced by `describe_database_error`'s line
    and the statement with its placeholders: the stack, the SQL, never the values."""
    chain = _chain(error)
    deepest = max((index for index, link in enumerate(chain) if _is_database_error(link)), default=-1)
    parts = []
    for index, link in enumerate(chain):
        if index <= deepest:
            message = describe_database_error(link)
            if isinstance(link, sa_exc.StatementError) and link.statement:
                message += f" [SQL: {' '.join(link.statement.split())}]"
        else:
            message = str(link)
        name = f"{type(link).__module__}.{type(link).__qualname__}"
        frames = "".join(traceback.format_tb(link.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{name}: {message}")
        if index + 1 == len(chain):
            break
        if link.__cause__ is not None:
            parts.append("\nThe above exception was the direct cause of the following exception:\n")
        else:
            parts.append("\nDuring handling of the above exception, another exception occurred:\n")
    return "\n".join(reversed(parts))


class ConnectionGate:
    """While the database is down, one connection attempt at a time; the others fail at once.

    A refused connection fails in a millisecond, but a frozen or black-holed server makes every
    attempt wait the whole connect timeout: with every worker thread waiting its turn, requests
    queue for several timeouts. Once an attempt has failed, the gate lets a single attempt through
    (whoever comes first) and fails the rest with the driver's OperationalError until one succeeds.
    Listens to the engine's `do_connect` event.
    """

    def __init__(self, unavailable: type[Exception]) -> None:
        self._unavailable = unavailable
        self._lock = threading.Lock()
        self._probing = False
        self.down_since: float | None = None

    def __call__(self, dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        probing = False  # this attempt is the one let through while the database is down
        with self._lock:
            if self.down_since is not None:
                if self._probing:
                    raise self._unavailable("the database is unavailable (another connection attempt is under way)")
                self._probing = probing = True
        try:
            connection = dialect.connect(*cargs, **cparams)
        except BaseException as error:
            with self._lock:
                if probing:
                    self._probing = False
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    logger.warning("database connection failed: %s", describe_database_error(error))
            raise
        with self._lock:
            if probing:
                self._probing = False
            if self.down_since is not None:
                logger.warning("database reachable again after %.1f s", time.monotonic() - self.down_since)
                self.down_since = None
        return connection
