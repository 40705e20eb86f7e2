"""The jobs' dispatcher: committed `queued` rows claimed with a lease, each run as a Prefect task run
named `job-<id>` (its logs and state in Prefect's UI), by the worker process that claimed it.

    Dispatcher().drain()          # the `jobs` flow: run what is claimable, then return
    Dispatcher().run_forever()    # `task worker`, beside the scheduled flows

The job row is the hand-off, not a Prefect call: a request commits its job with its own changes,
whether Prefect is up or not, and any worker finds it there. Claims are leases in the database
(`JobService.claim`, `FOR UPDATE SKIP LOCKED` on PostgreSQL), so any number of workers on any number
of machines run each job at most once at a time, and a dead worker's job is claimed again when its
lease runs out. Why not Prefect's background tasks (`.delay()` to `prefect task serve`): see
docs/architecture.md, "Background jobs".
"""

import logging
import os
import secrets
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE

from app.domains.base.actors import Actor
from app.domains.jobs.runner import run_job
from app.domains.jobs.service import JobService
from app.workers.runtime import container

logger = logging.getLogger(__name__)


def new_worker_id() -> str:
    """Unique per process: host, pid and something random (two workers sharing one could record
    each other's outcomes)."""
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(4)}"


@task(name="job", task_run_name="job-{job_id}", cache_policy=NO_CACHE)
def run_claimed_job(job_id: str, worker_id: str) -> str | None:
    """One claimed job, as a Prefect task run: the job's status afterwards (None: the lease was
    lost, its outcome not recorded). Plain values in, as Prefect records a task run's inputs."""
    status = run_job(container().unit_of_work, UUID(job_id), worker_id)
    return status.value if status is not None else None


class Dispatcher:
    """Claims jobs for this worker process (its container: `app.workers.runtime`) and runs up to
    JOB_CONCURRENCY at once."""

    def __init__(self, worker_id: str | None = None) -> None:
        self.container = container()
        settings = self.container.settings
        self.worker_id = worker_id or new_worker_id()
        self.lease_seconds = settings.job_lease_seconds
        self.poll_seconds = settings.job_poll_seconds
        self.concurrency = settings.job_concurrency
        self._stop = threading.Event()
        self._running: set[Future[None]] = set()
        self._lock = threading.Lock()

    def claim(self, limit: int) -> list[UUID]:
        with self.container.unit_of_work(Actor.system()) as uow:
            return [job.id for job in uow.service(JobService).claim(self.worker_id, self.lease_seconds, limit)]

    def run(self, job_id: UUID) -> None:
        """Run one claimed job as a task run. Should Prefect fail around it (unreachable, say), the
        job is put back for a retry: recorded only while this worker still holds its lease, so an
        outcome already recorded stays."""
        try:
            run_claimed_job.with_options(timeout_seconds=self.lease_seconds)(
                job_id=str(job_id), worker_id=self.worker_id
            )
        except Exception as error:
            logger.warning("job %s: its task run failed (%s); it will be retried", job_id, type(error).__name__)
            try:
                with self.container.unit_of_work(Actor.system()) as uow:
                    uow.service(JobService).fail(job_id, self.worker_id, f"worker error ({type(error).__name__})", True)
            except Exception:  # the database too: the lease runs out and another claim retries it
                logger.exception("job %s: could not put it back; its lease will expire", job_id)

    def drain(self) -> int:
        """Claim and run until nothing is claimable; returns how many ran."""
        ran = 0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
            while not self._stop.is_set():
                free = self.concurrency - self._busy()
                claimed = self.claim(free) if free else []
                for job_id in claimed:
                    self._submit(pool, job_id)
                ran += len(claimed)
                if not claimed and not self._busy():
                    return ran
                self._stop.wait(0.01 if claimed else 0.05)
        return ran

    def run_forever(self) -> None:
        """Poll for claimable jobs every JOB_POLL_SECONDS until `stop()`; a database outage is
        logged once per failure and retried at the next poll."""
        logger.info("job dispatcher %s: up to %d jobs at once", self.worker_id, self.concurrency)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
            while not self._stop.is_set():
                free = self.concurrency - self._busy()
                try:
                    claimed = self.claim(free) if free else []
                except Exception as error:
                    logger.warning("job dispatcher: claiming failed (%s); retrying", type(error).__name__)
                    claimed = []
                for job_id in claimed:
                    self._submit(pool, job_id)
                if not claimed or len(claimed) < free:
                    self._stop.wait(self.poll_seconds)
        logger.info("job dispatcher %s stopped", self.worker_id)

    def stop(self) -> None:
        self._stop.set()

    def _submit(self, pool: ThreadPoolExecutor, job_id: UUID) -> None:
        future = pool.submit(self.run, job_id)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._running.discard(future)

    def _busy(self) -> int:
        with self._lock:
            return len(self._running)
