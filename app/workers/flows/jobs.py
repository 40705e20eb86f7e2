"""`jobs` (on demand: `task flow -- jobs`): every claimable background job run now, then return.
`task worker` runs the same dispatcher continuously; this is for a machine without one."""

from prefect import flow, get_run_logger

from app.workers.jobs import Dispatcher


@flow(name="jobs")
def jobs() -> dict[str, int]:
    dispatcher = Dispatcher()
    ran = dispatcher.drain()
    get_run_logger().info("jobs: %d run by %s", ran, dispatcher.worker_id)
    return {"jobs_run": ran}
