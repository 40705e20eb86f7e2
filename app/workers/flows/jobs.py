"""`jobs` (on demand: `task flow -- jobs`): every claimable background job run now, then return.
`task worker` runs the same dispatcher continuously; this is for a machine without one."""

from prefect import flow, get_run_logger

from app.workers.jobs import Dispatcher
from app.workers.policy import HOUR


# On demand: an hour drains far more than any queue a worker left behind (35+ jobs/s per process).
@flow(name="jobs", timeout_seconds=HOUR)
def jobs() -> dict[str, int]:
    dispatcher = Dispatcher()
    ran = dispatcher.drain()
    get_run_logger().info("jobs: %d run by %s", ran, dispatcher.worker_id)
    return {"jobs_run": ran}
