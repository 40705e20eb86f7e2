"""Running jobs, in plain Python: what a dispatcher calls (the Prefect adapter, a test, a script).

    drain(container.unit_of_work, worker_id="host-1234-ab12", lease_seconds=60)

`run_job` runs a claimed job's handler in a unit of work of its own, then records the outcome in
another, so a handler's failure never rolls back the record of it. A transient error (the database
or an HTTP peer unreachable, a dropped connection) is retried with backoff; a `DomainError` (the
handler's "this cannot work") and any other error (a bug) fail the job at once. Each step acts as
`Actor.system()`; the outcome is recorded only while `worker_id` still holds the job's lease.

`worker_id` names one running worker (host, process and something random): two workers sharing
an id could record each other's outcomes.
"""

import logging
import sys
from collections.abc import Callable
from contextlib import ExitStack
from uuid import UUID

from app.domains.base.actors import Actor
from app.domains.base.exceptions import DomainError
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.jobs.kinds import job_kinds
from app.domains.jobs.models import JobStatus
from app.domains.jobs.service import JobService
from app.infrastructure.database_errors import is_outage
from app.infrastructure.log_context import log_fields

logger = logging.getLogger(__name__)

# `container.unit_of_work`: a new unit of work acting as the given actor.
type UnitOfWorkFactory = Callable[[Actor], UnitOfWork]


def is_transient(error: BaseException) -> bool:
    """Worth another attempt later: the database unreachable, too slow or dropping the connection
    (`is_outage`), or an HTTP peer unreachable (httpx's transport errors), anywhere in the chain of
    causes. Never a DomainError."""
    if isinstance(error, DomainError):
        return False
    if is_outage(error):
        return True
    httpx = sys.modules.get("httpx")  # loaded by whoever used it: nothing to check otherwise
    seen: BaseException | None = error
    for _ in range(16):
        if seen is None:
            return False
        if httpx is not None and isinstance(seen, httpx.TransportError):
            return True
        seen = seen.__cause__  # explicit chaining (`raise ... from`), as is_outage reads it
    return False


def _reason(error: BaseException) -> str:
    """What the job's `failure_reason` says. A DomainError's detail is written for people; anything
    else is named by its type only (a driver's message may quote rows: it goes to the log)."""
    if isinstance(error, DomainError):
        return error.detail
    return f"{'transient' if is_transient(error) else 'internal'} error ({type(error).__name__})"


def run_job(uow_factory: UnitOfWorkFactory, job_id: UUID, worker_id: str) -> JobStatus | None:
    """Run a job `worker_id` has claimed and record its outcome: the job's status afterwards
    (`queued` again when it will be retried), or None when the worker does not hold it (any more).
    Every record logged meanwhile carries the job's id and the id of the request that queued it."""
    with ExitStack() as context:
        context.enter_context(log_fields(job_id=str(job_id)))
        return _run_job(uow_factory, job_id, worker_id, context)


def _run_job(uow_factory: UnitOfWorkFactory, job_id: UUID, worker_id: str, context: ExitStack) -> JobStatus | None:
    def fail(reason: str, retryable: bool) -> JobStatus | None:
        return _record(uow_factory, job_id, worker_id, lambda jobs: jobs.fail(job_id, worker_id, reason, retryable))

    try:
        with uow_factory(Actor.system()) as uow:
            job = uow.service(JobService).get(job_id)
            if job.status != JobStatus.RUNNING or job.lease_owner != worker_id:
                return None
            context.enter_context(log_fields(request_id=job.request_id))
            kind_name, kind = job.kind, job_kinds.get(job.kind)
            result = kind.handler(uow, job) if kind is not None else {}
    except Exception as error:  # every failure is recorded on the job
        transient = is_transient(error)
        if not isinstance(error, DomainError):
            logger.warning("job %s failed (%s)", job_id, "will retry" if transient else "final", exc_info=error)
        return fail(_reason(error), transient)
    if kind is None:  # a worker older than the code that queued it: a newer one may know it
        return fail(f"no handler for the job kind {kind_name!r} in this worker", retryable=True)
    return _record(uow_factory, job_id, worker_id, lambda jobs: jobs.complete(job_id, worker_id, result))


def _record(
    uow_factory: UnitOfWorkFactory, job_id: UUID, worker_id: str, outcome: Callable[[JobService], bool]
) -> JobStatus | None:
    with uow_factory(Actor.system()) as uow:
        jobs = uow.service(JobService)
        if not outcome(jobs):
            logger.info("job %s: worker %s no longer holds it; its outcome was not recorded", job_id, worker_id)
            return None
        status = JobStatus(jobs.get(job_id).status)
    logger.info("job %s: %s", job_id, status)
    return status


def drain(uow_factory: UnitOfWorkFactory, worker_id: str, lease_seconds: float) -> int:
    """Claim and run jobs one at a time until none can be claimed now (queued jobs due, or jobs
    whose worker stopped); returns how many were run. One at a time: a job waiting in a local batch
    would burn its lease. A job retried with backoff is claimable again only once its wait is over."""
    ran = 0
    while True:
        with uow_factory(Actor.system()) as uow:
            claimed = uow.service(JobService).claim(worker_id, lease_seconds, limit=1)
        if not claimed:
            return ran
        run_job(uow_factory, claimed[0].id, worker_id)
        ran += 1
