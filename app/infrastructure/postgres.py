"""Bounds on every PostgreSQL call (psycopg2): a dead, unreachable or frozen server costs seconds.

The server enforces `statement_timeout` (sent as a startup option); libpq's `connect_timeout`,
TCP keepalives and `tcp_user_timeout` catch a dead host or a broken network. None of them notices a
server that is *frozen* (SIGSTOPped, swapping to death, a VM paused): its kernel still acknowledges
every packet, so a query waits forever and the thread running it is lost.

So the client keeps its own deadline. psycopg2 lets a process install one *wait callback*, called
whenever a connection would block (the "green" mode); ours waits with `poll()` and gives up at the
deadline of the connection's class: the connect timeout while connecting, the statement timeout
plus a margin afterwards (the server's own timeout answers first when the server is alive). Giving
up closes the connection (psycopg2 does, a "green panic"), so SQLAlchemy sees a disconnect and
invalidates the pool. Connections made without our class wait without a deadline, as before.
"""

import logging
import math
import select
import time
from typing import Any

import psycopg2
from psycopg2 import extensions

logger = logging.getLogger(__name__)

# The server cancels a statement at statement_timeout; the client waits this much longer (at most a
# second, at most the timeout again) before it decides the server is gone: a live server's
# cancellation arrives well within it.
CLIENT_DEADLINE_MARGIN_SECONDS = 1.0


class DeadlineExceeded(psycopg2.OperationalError):
    """The server did not answer within the client's deadline; the connection was closed."""


class BoundedConnection(extensions.connection):
    """A psycopg2 connection whose every wait has a deadline (set on subclasses)."""

    connect_deadline: float | None = None
    statement_deadline: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.connecting = True  # the wait callback runs inside __init__ while connecting
        super().__init__(*args, **kwargs)
        self.connecting = False


def bounded_connection_class(connect_seconds: float, statement_seconds: float | None) -> type[BoundedConnection]:
    """`statement_seconds=None`: statements wait as long as they take (migrations)."""
    statement_deadline = None
    if statement_seconds is not None:
        statement_deadline = statement_seconds + min(CLIENT_DEADLINE_MARGIN_SECONDS, statement_seconds)
    return type(
        "BoundedConnection",
        (BoundedConnection,),
        {"connect_deadline": connect_seconds, "statement_deadline": statement_deadline},
    )


def wait_with_deadline(connection: Any) -> None:
    """psycopg2's wait callback: poll the connection until it is ready, or until its deadline."""
    connecting = getattr(connection, "connecting", False)
    budget = getattr(connection, "connect_deadline" if connecting else "statement_deadline", None)
    deadline: float | None = None
    poller: Any = None
    while True:
        state = connection.poll()
        if state == extensions.POLL_OK:
            return
        if poller is None:
            poller = select.poll()  # not select(): file descriptors above 1024 are fine
            if budget is not None:
                deadline = time.monotonic() + budget
        events = select.POLLIN if state == extensions.POLL_READ else select.POLLOUT
        descriptor = connection.fileno()
        poller.register(descriptor, events)
        try:
            if deadline is None:
                poller.poll()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
                if connection.poll() == extensions.POLL_OK:  # ready at the very last moment
                    return
                what = "connecting" if connecting else "waiting for a statement"
                raise DeadlineExceeded(f"the database did not answer within {budget:g} s ({what})")
        finally:
            poller.unregister(descriptor)


def install_wait_callback() -> None:
    """Process-wide (psycopg2 has one callback). Leaves another library's callback alone."""
    current = extensions.get_wait_callback()
    if current is wait_with_deadline:
        return
    if current is not None:
        logger.warning("a psycopg2 wait callback is already installed (%r): no client-side deadlines", current)
        return
    extensions.set_wait_callback(wait_with_deadline)


def connect_args(url_query: dict[str, Any], connect_seconds: float, statement_seconds: float | None) -> dict[str, Any]:
    """psycopg2 connection arguments bounding every call (see the module's docstring)."""
    install_wait_callback()
    arguments: dict[str, Any] = {
        "connect_timeout": max(2, math.ceil(connect_seconds)),  # libpq's minimum is 2 s
        # A dead host or a cut network: idle connections are probed, unacknowledged data gives up.
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(connect_seconds)),
        "keepalives_interval": max(1, math.ceil(connect_seconds)),
        "keepalives_count": 3,
        "tcp_user_timeout": math.ceil((connect_seconds + (statement_seconds or 0)) * 1000),
        "connection_factory": bounded_connection_class(connect_seconds, statement_seconds),
    }
    if statement_seconds is not None:
        options = str(url_query.get("options", "")).strip()
        timeout = f"-c statement_timeout={math.ceil(statement_seconds * 1000)}"
        arguments["options"] = f"{options} {timeout}".strip()
    return arguments
