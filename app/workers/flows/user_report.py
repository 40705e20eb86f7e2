"""`user-report` (daily): the pattern in small. A task opens its own unit of work and calls a domain
service; the flow passes plain values and logs what it got."""

from datetime import timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from app.domains.base.models import utcnow
from app.domains.users.service import UserService
from app.workers.runtime import unit_of_work


@task(cache_policy=NO_CACHE)
def count_users(since_hours: int) -> dict[str, int]:
    with unit_of_work() as uow:
        return uow.service(UserService).report(since=utcnow() - timedelta(hours=since_hours))


@flow(name="user-report")
def user_report(since_hours: int = 24) -> dict[str, int]:
    counts = count_users(since_hours)
    get_run_logger().info("users: %s", counts)
    return counts
