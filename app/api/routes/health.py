"""Liveness and readiness probes (no authentication)."""

import logging

from litestar import Controller, Response, get
from litestar.datastructures import State
from sqlalchemy import text

from app.api.problems import problem

logger = logging.getLogger(__name__)


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012
    opt = {"exclude_from_auth": True}  # noqa: RUF012
    security = [{}]  # noqa: RUF012 (no credentials: probes run before anyone signs in)

    @get("/", operation_id="getLiveness", sync_to_thread=False)
    def liveness(self) -> dict[str, str]:
        """The process is up. Touches no database."""
        return {"status": "ok"}

    @get("/ready", operation_id="getReadiness", sync_to_thread=True)
    def readiness(self, state: State) -> Response[dict[str, str]]:
        """The database answers a query; 503 with the reason when it does not."""
        try:
            with state.container.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:
            logger.warning("readiness check failed: %s", error)
            return problem(503, f"database unreachable: {type(error).__name__}")
        return Response({"status": "ready"})
