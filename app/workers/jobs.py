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
import time
from concurrent.futures import Future, ThreadPoolExecutor
from uuid import UUID

from prefect import task
from prefect.context import SyncClientContext
from prefect.settings import get_current_settings

from app.domains.base.actors import Actor
from app.domains.jobs.models import Job
from app.domains.jobs.runner import run_job
from app.domains.jobs.service import JobService
from app.infrastructure import metrics, tracing
from app.workers.policy import JOB_TASK, JOB_TASK_POLICY
from app.workers.runtime import container

logger = logging.getLogger(__name__)


def new_worker_id() -> str:
    """Unique per process: host, pid and something random (two workers sharing one could record
    each other's outcomes)."""
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(4)}"


# Prefect persists no result: the job's outcome is on its row. Naming a local result storage all the
# same spares two requests per run (Prefect asks the server for its default storage otherwise, even
# to store nothing). No timeout: Prefect cannot interrupt a sync task in a worker thread (it says so
# in a warning per run); the lease is what bounds a job.
@task(
    name=JOB_TASK,
    task_run_name="job-{job_id}",
    **JOB_TASK_POLICY,
    persist_result=False,
    result_storage=get_current_settings().results.local_storage_path,
)
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
        self._slot_freed = threading.Event()
        self._prefect = threading.local()  # each job thread's Prefect client context
        self._clients: list[SyncClientContext] = []
        self._prefect_reached = False
        self._prefect_unanswered = False  # warned once
        self._running: set[Future[None]] = set()
        self._lock = threading.Lock()

    def claim(self, limit: int) -> list[Job]:
        """Lease up to `limit` jobs to this worker: none until Prefect has answered once."""
        if not self._reach_prefect():
            return []
        with self.container.unit_of_work(Actor.system()) as uow:
            return uow.service(JobService).claim(self.worker_id, self.lease_seconds, limit)

    def run(self, job: Job) -> None:
        """Run one claimed job as a task run. Should Prefect fail around it (unreachable, say), the
        job is put back for a retry: recorded only while this worker still holds its lease, so an
        outcome already recorded stays."""
        job_id, started = job.id, time.perf_counter()
        status: str | None = "error"  # Prefect failed around the run
        span = tracing.linked_span(
            f"job {job.kind}", job.trace_context, **{"app.job.id": str(job_id), "app.job.kind": job.kind}
        )
        try:
            with span:  # linked to the trace of the request that queued it
                self._enter_prefect_client()
                status = run_claimed_job(job_id=str(job_id), worker_id=self.worker_id)
        except Exception as error:
            logger.warning("job %s: its task run failed (%s); it will be retried", job_id, type(error).__name__)
            try:
                with self.container.unit_of_work(Actor.system()) as uow:
                    uow.service(JobService).fail(job_id, self.worker_id, f"worker error ({type(error).__name__})", True)
            except Exception:  # the database too: the lease runs out and another claim retries it
                logger.exception("job %s: could not put it back; its lease will expire", job_id)
        waited = (job.started_at - job.run_after).total_seconds() if job.started_at else 0.0
        metrics.recorder.job_finished(job.kind, status or "lost", max(waited, 0.0), time.perf_counter() - started)

    def drain(self) -> int:
        """Claim and run until nothing is claimable; returns how many ran."""
        ran = 0
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
                while not self._stop.is_set():
                    free = self.concurrency - self._busy()
                    claimed = self.claim(free) if free else []
                    for job in claimed:
                        self._submit(pool, job)
                    ran += len(claimed)
                    if not claimed and not self._busy():
                        break
                    self._stop.wait(0.01 if claimed else 0.05)
        finally:
            self._close_prefect_clients()
        return ran

    def run_forever(self) -> None:
        """Claim jobs for every free slot until `stop()`: again as soon as a job finishes while
        the queue has more, and every JOB_POLL_SECONDS once it is empty. A database outage is
        logged once per failure and retried at the next poll."""
        logger.info("job dispatcher %s: up to %d jobs at once", self.worker_id, self.concurrency)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
            while not self._stop.is_set():
                self._slot_freed.clear()
                free = self.concurrency - self._busy()
                try:
                    claimed = self.claim(free) if free else []
                except Exception as error:
                    logger.warning("job dispatcher: claiming failed (%s); retrying", type(error).__name__)
                    claimed = []
                for job in claimed:
                    self._submit(pool, job)
                if free and len(claimed) < free:  # nothing more to claim now: poll later
                    self._stop.wait(self.poll_seconds)
                else:  # every slot taken and maybe more queued: claim when one frees
                    self._slot_freed.wait(self.poll_seconds)
        self._close_prefect_clients()
        logger.info("job dispatcher %s stopped", self.worker_id)

    def _reach_prefect(self) -> bool:
        """Whether Prefect has answered this process once. A task run checks the server's version
        before it starts, once per process, and fails while it cannot: a job claimed then would
        be put back with an attempt spent, and failed for good after JOB_MAX_ATTEMPTS of those.
        Once checked, a task run sends no request to the server (its states go as events, which
        Prefect drops while the server is down), so jobs run whether Prefect answers or not."""
        if self._prefect_reached:
            return True
        context = SyncClientContext()
        try:
            with context:  # the version check the task runs would do
                pass
        except Exception as error:
            context.client.__exit__(None, None, None)
            log = logger.debug if self._prefect_unanswered else logger.warning
            log("job dispatcher: Prefect did not answer (%s); claiming no job until it does", error)
            self._prefect_unanswered = True
            return False
        self._prefect_reached = True
        return True

    def _enter_prefect_client(self) -> None:
        """One Prefect API client per job thread, for the dispatcher's life. Without a client
        context each task run builds a client of its own (an SSL context too, even for http://): a
        fifth of a no-op job's time (bench/jobs-results.md). If Prefect is unreachable, entering
        fails, and the thread's next job tries again."""
        if getattr(self._prefect, "context", None) is not None:
            return
        context = SyncClientContext()
        try:
            context.__enter__()  # checks the server's version, once per process
        except BaseException:
            context.client.__exit__(None, None, None)
            raise
        self._prefect.context = context
        with self._lock:
            self._clients.append(context)

    def _close_prefect_clients(self) -> None:
        """Once the job threads are done: their clients' connections are closed."""
        with self._lock:
            clients, self._clients = self._clients, []
        for context in clients:
            context.client.__exit__(None, None, None)

    def stop(self) -> None:
        self._stop.set()
        self._slot_freed.set()

    def _submit(self, pool: ThreadPoolExecutor, job: Job) -> None:
        future = pool.submit(self.run, job)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._running.discard(future)
        self._slot_freed.set()

    def _busy(self) -> int:
        with self._lock:
            return len(self._running)
