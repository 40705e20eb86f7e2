"""Prefect for the worker tests: a private PREFECT_HOME, and one test harness (a temporary local
Prefect server, ~15 s to start) shared by the whole session. Flows use the test database through
`use_container`."""

import dataclasses
import importlib
import json
import os
import pkgutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

# Before Prefect is imported anywhere: its settings are read at import.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # as app/workers/__init__.py sets it

import pytest
from prefect import Task, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State, TaskRun
from prefect.testing.utilities import prefect_test_harness

from app.bootstrap import Container
from app.infrastructure.clerk_backend_api import Backoff
from app.workers.flows.clerk_reconciliation import clerk_reconciliation
from app.workers.policy import TASK_RETRIES
from app.workers.runtime import use_container
from app.workers.tasks import reconcile_clerk_users as clerk_tasks
from tests.clerk_helpers import json_server
from tests.helpers import settings_for
from tests.workers.clerk_backend_fake import SECRET_KEY, FakeClerk


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def worker(container: Container, prefect_harness: None) -> Iterator[Container]:
    """Flows and tasks of this test run against the test database, through a real Prefect API."""
    use_container(container)
    yield container
    use_container(None)


# -- a fake of Clerk's Backend API, for the clerk-reconciliation tests -----------------------------


@pytest.fixture
def fake_clerk() -> Iterator[FakeClerk]:
    """Clerk's Backend API as `FakeClerk` answers it, over real HTTP on loopback."""
    fake: FakeClerk | None = None

    def answer(path: str, authorization: str | None) -> tuple[int, dict[str, str], Any]:
        assert fake is not None
        return fake.answer(path, authorization)

    with json_server(answer) as url:
        fake = FakeClerk(url=f"{url}/v1")
        yield fake


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The flow's retries wait for nothing; the waits they asked for are recorded."""
    asked: list[float] = []
    monkeypatch.setattr(clerk_tasks, "BACKOFF", Backoff(base_delay=0.25, sleep=asked.append))
    return asked


@pytest.fixture
def reconcile(worker: Container, fake_clerk: FakeClerk, waits: list[float]) -> Iterator[Callable[..., dict]]:
    """The flow, run by Prefect, pointed at the fake Clerk and the test database."""
    settings = settings_for(worker.settings.database_url, clerk_secret_key=SECRET_KEY, clerk_api_url=fake_clerk.url)
    use_container(dataclasses.replace(worker, settings=settings))
    yield clerk_reconciliation
    use_container(worker)


def worker_tasks() -> list[Task[..., Any]]:
    """Every Prefect task defined under app/workers (its modules imported)."""
    import app.workers

    found: dict[int, Task[..., Any]] = {}
    for module in pkgutil.walk_packages(app.workers.__path__, "app.workers."):
        for value in vars(importlib.import_module(module.name)).values():
            if isinstance(value, Task):
                found[id(value)] = value
    return list(found.values())


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient errors retried as the policy says, after 0.2 s instead of 10-40 s."""
    for task in worker_tasks():
        monkeypatch.setattr(task, "retry_delay_seconds", [0.2] * TASK_RETRIES)
        monkeypatch.setattr(task, "retry_jitter_factor", None)


def counts_artifact(state: State[Any]) -> dict[str, Any]:
    """The `<flow>-counts` table a flow run published: {count: value}."""
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    [artifact] = artifacts
    assert artifact.type == "table"
    assert artifact.key
    assert artifact.key.endswith("-counts")
    assert isinstance(artifact.data, str)
    return {row["count"]: row["value"] for row in json.loads(artifact.data)}


def task_runs(state: State[Any], timeout: float = 20) -> dict[str, TaskRun]:
    """The flow run's task runs by task name, once all are final (the server records them from events)."""
    flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=flow_run_filter)
            if runs and all(run.state and run.state.is_final() for run in runs):
                return {run.name.rsplit("-", 1)[0]: run for run in runs}  # "revoke_expired_api_keys-3f2"
            assert time.monotonic() < deadline, f"task runs not final in {timeout} s: {runs}"
            time.sleep(0.5)
