"""`serve` as an operator meets it, against the test harness's Prefect server: a run triggered while
another runs is cancelled, not run twice; a served process killed mid-run (SIGKILL of its process
group: the container or machine died) leaves a run that is marked Crashed within a bounded time,
frees its slot, and the next run starts. The flow is a slow one of the tests' own
(tests/workers/slow_flows.py), served by the same `serve` the worker runs."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL

from app.infrastructure.config import PROJECT_ROOT
from app.workers import crash_detection
from app.workers.crash_detection import CRASH_WINDOW_SECONDS

DEPLOYMENT = "sleeper/served"


def wait_for[T](what: str, check: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(every)
    return found


def flow_run(run_id: UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def state_of(run_id: UUID, *types: StateType) -> FlowRun | None:
    run = flow_run(run_id)
    return run if run.state and run.state.type in types else None


def trigger(seconds: float) -> UUID:
    return run_deployment(DEPLOYMENT, parameters={"seconds": seconds}, timeout=0).id  # type: ignore[union-attr]


def active_slots() -> int:
    with get_client(sync_client=True) as client:
        limit = client.read_deployment_by_name(DEPLOYMENT).global_concurrency_limit
    assert limit is not None
    return limit.active_slots


def automations() -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_automations_by_name(crash_detection.NAME)


@pytest.fixture
def serve_process(prefect_harness: None) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Starts `serve` of the slow flow, in a process group of its own, once its deployment is registered."""
    started: list[subprocess.Popen[str]] = []
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "DATABASE_URL": f"sqlite:///{tempfile.mkdtemp(prefix='serve-')}/app.db",
    }

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.workers.slow_flows"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        started.append(process)

        def registered() -> bool | None:
            assert process.poll() is None, "serve exited"
            with get_client(sync_client=True) as client:
                try:
                    client.read_deployment_by_name(DEPLOYMENT)
                except Exception:
                    return None
            return True

        wait_for("the served deployment", registered, timeout=120)
        time.sleep(3)  # the runner polls once it is registered
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def test_an_overlapping_run_is_cancelled_and_a_killed_run_is_crashed_and_frees_its_slot(
    serve_process: Callable[[], subprocess.Popen[str]],
) -> None:
    served = serve_process()
    [automation] = automations()
    assert automation.trigger.match_related.root == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": ["sleeper"],
    }

    first = trigger(seconds=600)
    wait_for("the first run running", lambda: state_of(first, StateType.RUNNING), timeout=90)
    second = trigger(seconds=1)
    cancelled = wait_for(
        "the second run's end", lambda: state_of(second, StateType.CANCELLED, StateType.COMPLETED), timeout=90
    )
    assert cancelled.state
    assert (cancelled.state.type, cancelled.state.message) == (
        StateType.CANCELLED,
        "Deployment concurrency limit reached.",
    )
    assert cancelled.start_time is None or cancelled.total_run_time.total_seconds() == 0  # it never ran

    time.sleep(2)  # its first heartbeat is sent as it starts
    os.killpg(served.pid, signal.SIGKILL)  # the runner and the flow's process: the machine died
    served.wait(timeout=10)
    killed_at = time.monotonic()
    assert state_of(first, StateType.RUNNING), "nobody can tell it died yet"
    assert active_slots() == 1

    crashed = wait_for(
        "the killed run marked Crashed",
        lambda: state_of(first, StateType.CRASHED),
        timeout=CRASH_WINDOW_SECONDS + 90,
        every=2,
    )
    crashed_after = time.monotonic() - killed_at
    assert crashed.state
    assert crashed.state.message
    assert crashed.state.message.startswith(f"no heartbeat for {CRASH_WINDOW_SECONDS} s")
    assert active_slots() == 0  # freed by the Crashed state, minutes before Prefect's lease would expire

    serve_process()  # the container restarts
    assert len(automations()) == 1  # ensured again, not duplicated
    triggered = time.monotonic()
    third = trigger(seconds=1)
    done = wait_for(
        "the next run",
        lambda: state_of(third, StateType.COMPLETED, StateType.CANCELLED, StateType.FAILED, StateType.CRASHED),
        timeout=120,
    )
    assert done.state
    assert done.state.type == StateType.COMPLETED, done.state
    print(
        f"\nkilled mid-run: Crashed {crashed_after:.0f} s after SIGKILL (window {CRASH_WINDOW_SECONDS} s); "
        f"the next run completed {time.monotonic() - triggered:.0f} s after its trigger"
    )
