"""Background jobs run by real worker processes (tests/workers/job_worker.py: what `task worker` runs
for jobs) against a real Prefect API (the session's harness) and PostgreSQL, the supported case
for several workers. Each run of a handler leaves a row in `job_effects`, so these tests count
what handlers did, not only the statuses they recorded."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from litestar.testing import TestClient
from prefect.settings import PREFECT_API_URL
from sqlalchemy import text

from app.bootstrap import Container
from app.domains.jobs.service import JobService
from app.domains.users.models import User
from app.infrastructure.config import PROJECT_ROOT, Settings
from app.infrastructure.database import Database
from tests.conftest import actor_of
from tests.helpers import CHEAP_ARGON2, backend_name
from tests.test_concurrency import serving
from tests.workers.job_worker import EFFECTS_TABLE, PROBE


@pytest.fixture
def prefect_api(settings: Settings, prefect_harness: None) -> str:
    """The harness's Prefect server (a real one, on loopback), for processes of their own."""
    if backend_name(settings) != "postgresql":
        pytest.skip("several worker processes: PostgreSQL only (SQLite supports one worker)")
    return PREFECT_API_URL.value()


@pytest.fixture
def effects(database: Database, prefect_api: str) -> Iterator[Callable[[], list[tuple[str, str]]]]:
    """The test-only table the workers' handlers write to; reads its rows (job id, worker id)."""
    with database.engine.begin() as connection:
        connection.execute(text(EFFECTS_TABLE))

    def rows() -> list[tuple[str, str]]:
        with database.engine.connect() as connection:
            return [(str(job), worker) for job, worker in connection.execute(text("SELECT * FROM job_effects"))]

    yield rows
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE job_effects"))


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    worker_id: str
    stdout: Path
    stderr: Path

    def started(self, job_id: str) -> bool:
        return f"started {job_id}" in self.stdout.read_text()

    def logs(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]


@pytest.fixture
def start_worker(settings: Settings, prefect_api: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """`start_worker(JOB_LEASE_SECONDS="3", ...)`: a worker process, once it dispatches; each is
    stopped with SIGTERM (SIGKILL if need be) at the end."""
    started: list[Worker] = []

    def start(**environment: str) -> Worker:
        name = f"worker-{len(started) + 1}"
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "PREFECT_API_URL": prefect_api,
            "JOB_POLL_SECONDS": "0.2",
            "LOG_LEVEL": "INFO",
            **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
            **environment,
        }
        stdout, stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.workers.job_worker"], env=env, cwd=PROJECT_ROOT, stdout=out, stderr=err
            )
        worker = Worker(process, "", stdout, stderr)
        started.append(worker)
        first_line = wait_for(lambda: stdout.read_text().partition("\n")[0], 60, f"{name} to start", worker)
        worker.worker_id = first_line.removeprefix("worker ")
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in started:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


def wait_for(check: Callable[[], Any], timeout: float, what: str, worker: Worker | None = None) -> Any:
    """`check()`'s first truthy value, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"the worker exited ({worker.process.returncode}) waiting for {what}:\n{worker.logs()}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)
    return value


def jobs_by_status(database: Database, ids: list[str]) -> dict[str, list[str]]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, status FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": ids}
        ).all()
    by_status: dict[str, list[str]] = {}
    for job_id, status in rows:
        by_status.setdefault(status, []).append(str(job_id))
    return by_status


def all_succeeded(database: Database, ids: list[str]) -> bool:
    return len(jobs_by_status(database, ids).get("succeeded", [])) == len(ids)


def attempts_made(database: Database) -> list[int]:
    """The distinct `attempts` of every job."""
    with database.engine.connect() as connection:
        return list(connection.execute(text("SELECT DISTINCT attempts FROM jobs ORDER BY 1")).scalars())


def job_row(database: Database, job_id: str) -> Any:
    with database.engine.connect() as connection:
        return connection.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": UUID(job_id)}).one()


def enqueue_probes(container: Container, user: User, count: int, **parameters: Any) -> list[str]:
    """Probe jobs started by `user`, through the service, in one transaction (as a route does)."""
    with container.unit_of_work(actor_of(user)) as uow:
        return [str(uow.service(JobService).enqueue(PROBE, parameters).id) for _ in range(count)]


def start_exports(client: Any, headers: dict[str, str], count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = client.post("/api/users/me/exports", headers=headers)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def test_two_workers_run_each_of_500_exports_exactly_once(
    start_worker: Callable[..., Worker],
    effects: Callable[[], list[tuple[str, str]]],
    client: TestClient,
    as_user: Callable,
    database: Database,
) -> None:
    """500 exports started over HTTP while two worker processes drain the queue: each export's
    handler ran once, its job succeeded on its first attempt, and both workers took part."""
    first, second = start_worker(), start_worker()
    _, headers = as_user()
    ids = start_exports(client, headers, 500)
    wait_for(lambda: all_succeeded(database, ids), 300, "500 exports to succeed", first)

    runs = effects()
    assert sorted(job_id for job_id, _ in runs) == sorted(ids)  # one run per job, none of another
    ran_by = {worker_id for _, worker_id in runs}
    assert ran_by == {first.worker_id, second.worker_id}
    assert attempts_made(database) == [1]
    document = client.get(f"/api/jobs/{ids[-1]}/result", headers=headers)
    assert document.status_code == 200
    assert document.json()["kind"] == "user_export"


def test_a_worker_killed_mid_job_leaves_it_to_another_after_the_lease(
    start_worker: Callable[..., Worker],
    effects: Callable[[], list[tuple[str, str]]],
    container: Container,
    make_user: Callable[..., User],
    database: Database,
) -> None:
    """SIGKILL while the handler runs (its effect written, uncommitted): the job stays `running`
    until its 3 s lease expires, then the other worker claims it and runs it to the end. The
    killed run left nothing: its transaction died with its connection."""
    victim = start_worker(JOB_LEASE_SECONDS="3")
    (job_id,) = enqueue_probes(container, make_user(), 1, sleep=5)
    wait_for(lambda: victim.started(job_id), 30, "the job to start", victim)
    first_claim = job_row(database, job_id)
    assert (first_claim.status, first_claim.lease_owner, first_claim.attempts) == ("running", victim.worker_id, 1)
    victim.process.kill()
    victim.process.wait()

    survivor = start_worker(JOB_LEASE_SECONDS="30")  # its lease outlasts the 5 s the job takes
    wait_for(lambda: all_succeeded(database, [job_id]), 60, "the job to succeed", survivor)
    done = job_row(database, job_id)
    assert (done.attempts, done.failure_reason) == (2, None)
    assert done.started_at >= first_claim.lease_expires_at  # claimed again only once the lease ran out
    assert effects() == [(job_id, survivor.worker_id)]


def test_jobs_submitted_while_no_worker_runs_are_all_done_once_one_starts(
    start_worker: Callable[..., Worker],
    effects: Callable[[], list[tuple[str, str]]],
    container: Container,
    make_user: Callable[..., User],
    database: Database,
) -> None:
    ids = enqueue_probes(container, make_user(), 30)
    time.sleep(0.5)
    assert set(jobs_by_status(database, ids)) == {"queued"}
    assert effects() == []
    worker = start_worker()
    wait_for(lambda: all_succeeded(database, ids), 60, "the queued jobs to succeed", worker)
    assert sorted(effects()) == sorted((job_id, worker.worker_id) for job_id in ids)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on, for as long as the test runs (bound, so not reused)."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield reserved.getsockname()[1]


def test_jobs_committed_while_prefect_is_unreachable_are_run_by_a_worker_started_later(
    start_worker: Callable[..., Worker],
    effects: Callable[[], list[tuple[str, str]]],
    settings: Settings,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
    closed_port: int,
    tmp_path: Path,
    database: Database,
) -> None:
    """The API, a real server whose PREFECT_API_URL answers nothing, starts exports as usual: a job
    is a row, and the API never talks to Prefect. A worker started later runs them."""
    headers = {"X-API-Key": make_api_key(make_user())}
    unreachable = f"http://127.0.0.1:{closed_port}/api"
    with serving(settings, tmp_path, PREFECT_API_URL=unreachable) as base_url, httpx.Client(base_url=base_url) as api:
        ids = start_exports(api, headers, 20)
    assert set(jobs_by_status(database, ids)) == {"queued"}
    worker = start_worker()
    wait_for(lambda: all_succeeded(database, ids), 60, "the exports to succeed", worker)
    assert sorted(effects()) == sorted((job_id, worker.worker_id) for job_id in ids)


class Gate:
    """A loopback port in front of the Prefect API: closed (bound, not listening: connections are
    refused) until `open()`, then every connection is forwarded to the API."""

    def __init__(self, api_url: str) -> None:
        target = httpx.URL(api_url)
        self.target = (target.host, target.port or 80)
        self.path = target.path
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}{self.path}"

    def open(self) -> None:
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        with suppress(OSError):  # closed
            while True:
                inbound, _ = self.listener.accept()
                outbound = socket.create_connection(self.target)
                for source, sink in ((inbound, outbound), (outbound, inbound)):
                    threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_a_worker_that_cannot_reach_prefect_claims_nothing_until_it_can(
    start_worker: Callable[..., Worker],
    effects: Callable[[], list[tuple[str, str]]],
    prefect_api: str,
    container: Container,
    make_user: Callable[..., User],
    database: Database,
) -> None:
    """A task run cannot start before Prefect has answered the process once (its version check):
    had the worker claimed jobs, each would have been put back with an attempt spent, and failed
    for good after JOB_MAX_ATTEMPTS (here 2). It claims none; once Prefect answers, it runs them
    all, each on its first attempt."""
    gate = Gate(prefect_api)
    try:
        worker = start_worker(PREFECT_API_URL=gate.url, JOB_MAX_ATTEMPTS="2", JOB_RETRY_BACKOFF_SECONDS="0.1")
        ids = enqueue_probes(container, make_user(), 8)
        tried = lambda: "Prefect did not answer" in worker.logs() or attempts_made(database) != [0]  # noqa: E731
        wait_for(tried, 30, "the worker to try Prefect", worker)
        time.sleep(1)  # several polls
        assert set(jobs_by_status(database, ids)) == {"queued"}
        assert attempts_made(database) == [0]
        gate.open()
        wait_for(lambda: all_succeeded(database, ids), 60, "the jobs to succeed", worker)
    finally:
        gate.close()
    assert attempts_made(database) == [1]
    assert sorted(effects()) == sorted((job_id, worker.worker_id) for job_id in ids)
