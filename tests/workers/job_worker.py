"""A worker process for the tests and the bench: exactly what `task worker` runs for jobs
(`app.workers.main.dispatching()`: the dispatcher in a thread, until SIGTERM), with a `probe` kind
registered and every handler's runs recorded, so a test counts what handlers did, not statuses.

    DATABASE_URL=... PREFECT_API_URL=... python -m tests.workers.job_worker

Each run of a handler inserts one row `(job_id, worker_id)` into `job_effects` (created by the
caller with `EFFECTS_TABLE`) in the handler's own unit of work: committed with the handler's work,
rolled back with it. `probe` sleeps `parameters["sleep"]` seconds, if given, after that insert.
The first line printed is `worker <id>`; then `started <job id>` once a handler has written its row.
"""

import dataclasses
import signal
import threading
import time
from typing import Any

from sqlalchemy import text

from app.domains.base.unit_of_work import UnitOfWork
from app.domains.jobs.kinds import Handler, job_kinds
from app.domains.jobs.models import Job

PROBE = "probe"
EFFECTS_TABLE = "CREATE TABLE IF NOT EXISTS job_effects (job_id uuid NOT NULL, worker_id text NOT NULL)"


def probe(uow: UnitOfWork, job: Job) -> dict[str, Any]:
    """The test kind: no data of its own, a configurable duration."""
    if seconds := job.parameters.get("sleep"):
        time.sleep(float(seconds))
    return {"probe": True, "worker": job.lease_owner}


def recorded(handler: Handler) -> Handler:
    def run(uow: UnitOfWork, job: Job) -> dict[str, Any]:
        insert = text("INSERT INTO job_effects (job_id, worker_id) VALUES (:job_id, :worker_id)")
        uow.session.execute(insert, {"job_id": job.id, "worker_id": job.lease_owner})
        print(f"started {job.id}", flush=True)  # the tests' "mid-job"
        return handler(uow, job)

    return run


if job_kinds.get(PROBE) is None:  # imported by the tests too (they enqueue probes): registered once
    job_kinds.register(PROBE, probe)


def record_every_kind() -> None:
    """Wrap each registered handler (the exports too) so that each of its runs leaves a row. Only
    in the worker process: the registry has no public way to replace a handler, nor should it."""
    for name in job_kinds.names():
        kind = job_kinds._kinds[name]
        job_kinds._kinds[name] = dataclasses.replace(kind, handler=recorded(kind.handler))


def main() -> None:
    from app.workers.main import dispatching

    record_every_kind()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with dispatching() as dispatcher:
        print(f"worker {dispatcher.worker_id}", flush=True)
        while not stopped.wait(0.2):
            pass


if __name__ == "__main__":
    main()
