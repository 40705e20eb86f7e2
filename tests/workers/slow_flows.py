"""A flow that takes as long as it is told, served as `task worker` serves the registered ones, for
the tests that overlap its runs and kill its process (tests/workers/test_operations.py):

    python -m tests.workers.slow_flows    # serve(FLOWS) against PREFECT_API_URL
"""

import time

from prefect import flow

import app.workers  # noqa: F401 (first: the heartbeat setting, before Prefect reads its settings)
from app.workers.registry import FlowRegistry, RegisteredFlow


@flow(name="sleeper", timeout_seconds=3600)
def sleeper(seconds: float = 1.0) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept": seconds}


FLOWS = FlowRegistry(RegisteredFlow(sleeper, cron=None, summary="sleeps for `seconds`"))

if __name__ == "__main__":
    from app.workers.main import serve

    serve(FLOWS)
