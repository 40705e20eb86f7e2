"""`user-report` (daily): the pattern in small. A task opens its own unit of work and calls a domain
service; the flow passes plain values, and `@reported` publishes what it returns (app/workers/outcomes.py)."""

from datetime import timedelta

from prefect import flow, task

from app.domains.base.models import utcnow
from app.domains.users.service import UserService
from app.workers.outcomes import reported
from app.workers.policy import MINUTE, TASK_POLICY
from app.workers.runtime import unit_of_work


@task(**TASK_POLICY)
def count_users(since_hours: int) -> dict[str, int]:
    with unit_of_work() as uow:
        return uow.service(UserService).report(since=utcnow() - timedelta(hours=since_hours))


@flow(name="user-report", timeout_seconds=10 * MINUTE)  # three counts: seconds, on any table
@reported
def user_report(since_hours: int = 24) -> dict[str, int]:
    return count_users(since_hours)
