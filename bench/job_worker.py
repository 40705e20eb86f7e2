"""The jobs bench's worker process: a `noop` kind registered, then what `task worker` runs for jobs
(`app.workers.main.dispatching()`: the dispatcher in a thread) until SIGTERM.

    DATABASE_URL=... PREFECT_API_URL=... BENCH_TIMINGS=/tmp/w1.json python -m bench.job_worker

Prints `worker <id>` once it dispatches. With BENCH_TIMINGS, the phases of each job are written
there on exit (JSON): `run`, the whole task run as the dispatcher calls it (`Dispatcher.run`:
Prefect's engine around our code); `run_job`, our code inside it (the handler's unit of work and the
outcome's); `claim`, each claim's seconds and jobs. Times are wall-clock, in seconds.
"""

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from app.domains.base.unit_of_work import UnitOfWork
from app.domains.jobs.kinds import job_kinds
from app.domains.jobs.models import Job

NOOP = "noop"


def noop(_uow: UnitOfWork, _job: Job) -> dict[str, Any]:
    return {}


if job_kinds.get(NOOP) is None:  # the bench imports this module too, to enqueue the kind
    job_kinds.register(NOOP, noop)


def timed(record: list[list[Any]], function: Callable[..., Any], job_id_at: int | None) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = function(*args, **kwargs)
        job = args[job_id_at] if job_id_at is not None else None
        label = str(getattr(job, "id", job)) if job_id_at is not None else len(result)  # a Job or its id
        record.append([label, time.perf_counter() - started])
        return result

    return call


def main() -> None:
    from app.workers import jobs  # noqa: PLC0415 (imports Prefect)
    from app.workers.main import dispatching  # noqa: PLC0415

    timings: dict[str, list[list[Any]]] = {"run": [], "run_job": [], "claim": []}
    if os.environ.get("BENCH_TIMINGS"):
        # run_job(uow_factory, job_id, worker_id); Dispatcher.run(self, job); Dispatcher.claim(self, limit)
        jobs.run_job = timed(timings["run_job"], jobs.run_job, 1)  # type: ignore[assignment]
        jobs.Dispatcher.run = timed(timings["run"], jobs.Dispatcher.run, 1)  # type: ignore[method-assign]
        jobs.Dispatcher.claim = timed(timings["claim"], jobs.Dispatcher.claim, None)  # type: ignore[method-assign]
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with dispatching() as dispatcher:
        print(f"worker {dispatcher.worker_id}", flush=True)
        while not stopped.wait(0.2):
            pass
    if path := os.environ.get("BENCH_TIMINGS"):
        with open(path, "w") as file:
            json.dump(timings, file)


if __name__ == "__main__":
    main()
