"""Liveness and readiness probes (no authentication)."""

import asyncio
import logging
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

from litestar import Controller, Response, get
from litestar.datastructures import State

from app.api.problems import problem
from app.api.route_decorators import problem_responses
from app.infrastructure.database import Database
from app.infrastructure.database_errors import describe_database_error

logger = logging.getLogger(__name__)

# /health/ready answers within this, whatever the database does (its own bounds are shorter).
READINESS_TIMEOUT_SECONDS = 0.8


class ReadinessProbe:
    """Runs `Database.ping` in a thread of its own, never a worker thread, one probe at a time.

    A caller waits at most READINESS_TIMEOUT_SECONDS. A probe still running past that is not
    abandoned to pile up: the ping is bounded by the database's probe timeouts, so its thread comes
    back within a second or two, and meanwhile every caller shares that one probe's answer.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="readiness")
        self._running: Future[None] | None = None

    async def failure(self) -> tuple[str, str] | None:
        """None when the database answered; else why not: a short reason, and what to log."""
        if self._running is None or self._running.done():
            self._running = self._executor.submit(self._database.ping)
        running = asyncio.wrap_future(self._running)
        running.add_done_callback(_retrieve)  # a late failure is not "never retrieved"
        done, _ = await asyncio.wait({running}, timeout=READINESS_TIMEOUT_SECONDS)
        if not done:
            reason = f"no answer within {READINESS_TIMEOUT_SECONDS:g} s"
            return reason, reason
        error = running.exception()
        return None if error is None else (type(error).__name__, describe_database_error(error))


def _retrieve(future: "asyncio.Future[None]") -> None:
    if not future.cancelled():
        future.exception()


_probes: weakref.WeakKeyDictionary[Database, ReadinessProbe] = weakref.WeakKeyDictionary()


def readiness_probe(database: Database) -> ReadinessProbe:
    probe = _probes.get(database)
    if probe is None:
        probe = _probes[database] = ReadinessProbe(database)
    return probe


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012
    opt = {"exclude_from_auth": True}  # noqa: RUF012
    security = [{}]  # noqa: RUF012 (no credentials: probes run before anyone signs in)

    @get("/", operation_id="getLiveness", sync_to_thread=False)
    def liveness(self) -> dict[str, str]:
        """The process is up. Touches no database."""
        return {"status": "ok"}

    @get("/ready", operation_id="getReadiness", responses=problem_responses({503}))
    async def readiness(self, state: State) -> Response[dict[str, str]]:
        """The database answers a query; 503 with the reason when it does not (within a second)."""
        failure = await readiness_probe(state.container.database).failure()
        if failure is not None:
            reason, description = failure
            logger.warning("readiness check failed: %s", description)
            return problem(503, f"database unreachable: {reason}")
        return Response({"status": "ready"})
