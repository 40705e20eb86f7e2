"""What flows and tasks share in one worker process: the container, built once, and units of work.

Tasks receive ids and plain values, never sessions or clients (Prefect hashes task inputs), and each
opens its own unit of work: one transaction per batch.
"""

from typing import Annotated

from pydantic import Field

from app.bootstrap import Container, bootstrap
from app.domains.base.actors import Actor
from app.domains.base.unit_of_work import UnitOfWork
from app.infrastructure import tracing
from app.workers.logs import configure_worker_logging

_container: Container | None = None

# A flow's batch-size parameter (Prefect validates parameters): None means WORKER_BATCH_SIZE.
BatchSize = Annotated[int, Field(ge=1, le=100_000)] | None


def container() -> Container:
    """Built from the environment on first use, which also sets up the worker's logging
    (app/workers/logs.py) and, with METRICS_ENABLED, its metrics; `use_container` sets another
    (tests, embedding)."""
    global _container  # noqa: PLW0603
    if _container is None:
        _container = bootstrap()
        configure_worker_logging(_container.settings)
        if tracing.enabled():
            tracing.configure("app-worker")
            tracing.instrument_engine(_container.database.engine)
        if _container.settings.metrics_enabled:  # every worker process records; `serve` serves them
            from app.infrastructure import prometheus  # noqa: PLC0415

            prometheus.enable(_container.settings)
    return _container


def use_container(other: Container | None) -> None:
    global _container  # noqa: PLW0603
    _container = other


def unit_of_work(actor: Actor | None = None) -> UnitOfWork:
    """A transactional unit of work, as the system unless another actor is named."""
    return container().unit_of_work(actor or Actor.system())
