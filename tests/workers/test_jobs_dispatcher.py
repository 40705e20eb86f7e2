"""The jobs' dispatcher on a real Prefect API (the harness): each job a task run named after it, the
`jobs` flow draining the queue, and the continuous dispatcher `task worker` runs."""

import asyncio
import threading
import time
from collections.abc import Callable

from litestar.testing import TestClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.jobs.models import Job, JobStatus
from app.workers.flows.jobs import jobs
from app.workers.jobs import Dispatcher


def start_exports(client: TestClient, headers: dict[str, str], count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = client.post("/api/users/me/exports", headers=headers)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def task_run_states(names: list[str]) -> dict[str, str]:
    async def read() -> dict[str, str]:
        async with get_client() as prefect:
            runs = await prefect.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)))
        return {run.name: run.state_type.value if run.state_type else "" for run in runs}

    return asyncio.run(read())


def test_the_jobs_flow_runs_each_queued_job_as_a_task_run_named_after_it(
    worker: Container, client: TestClient, as_user: Callable, session: Session
) -> None:
    _, headers = as_user()
    ids = start_exports(client, headers, 3)
    assert jobs() == {"jobs_run": 3}
    statuses = {str(job.id): job.status for job in session.scalars(select(Job))}
    assert statuses == dict.fromkeys(ids, JobStatus.SUCCEEDED)
    assert task_run_states([f"job-{job_id}" for job_id in ids]) == {f"job-{job_id}": "COMPLETED" for job_id in ids}
    for job_id in ids:
        document = client.get(f"/api/jobs/{job_id}/result", headers=headers)
        assert document.status_code == 200, document.text
    assert jobs() == {"jobs_run": 0}  # nothing left: a second drain runs nothing


def test_the_continuous_dispatcher_picks_up_a_job_committed_while_it_runs(
    worker: Container, client: TestClient, as_user: Callable, session: Session
) -> None:
    """What `task worker` runs beside the scheduled flows: a job queued while it polls is done
    within a few polls, and stopping it lets the jobs it started finish."""
    _, headers = as_user()
    dispatcher = Dispatcher()
    thread = threading.Thread(target=dispatcher.run_forever)
    thread.start()
    try:
        (job_id,) = start_exports(client, headers, 1)
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            status = client.get(f"/api/jobs/{job_id}", headers=headers).json()["status"]
            if status == "succeeded":
                break
            time.sleep(0.1)
        assert status == "succeeded"
    finally:
        dispatcher.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
