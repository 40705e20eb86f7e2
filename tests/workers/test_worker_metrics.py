"""What the worker counts: each job it runs (kind, status, wait, run time) and each flow run's end.
The recorder here keeps the calls (the Prometheus one is checked end to end in tests/test_metrics.py)."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from app.bootstrap import Container
from app.infrastructure import metrics
from app.workers.flows.user_report import user_report
from app.workers.jobs import Dispatcher


class Calls(metrics.Recorder):
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def job_enqueued(self, kind: str) -> None:
        self.calls.append(("job_enqueued", (kind,)))

    def job_finished(self, kind: str, status: str, queued_seconds: float, run_seconds: float) -> None:
        assert queued_seconds >= 0
        assert run_seconds > 0
        self.calls.append(("job_finished", (kind, status)))

    def flow_finished(self, flow: str, state: str) -> None:
        self.calls.append(("flow_finished", (flow, state)))


@pytest.fixture
def recorded() -> Iterator[Calls]:
    calls = Calls()
    before = metrics.recorder
    metrics.use(calls)
    yield calls
    metrics.use(before)


def test_jobs_and_flow_runs_are_counted(
    recorded: Calls, worker: Container, client: TestClient, as_user: Callable
) -> None:
    _, headers = as_user()
    assert client.post("/api/users/me/exports", headers=headers).status_code == 202
    dispatcher = Dispatcher(worker_id="metrics-worker")
    (job,) = dispatcher.claim(1)
    dispatcher.run(job)
    user_report(since_hours=24)
    assert recorded.calls == [
        ("job_enqueued", ("user_export",)),
        ("job_finished", ("user_export", "succeeded")),
        ("flow_finished", ("user-report", "completed")),
    ]
