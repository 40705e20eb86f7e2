"""Housekeeping tasks, each a domain rule applied in batches as the system."""

from datetime import timedelta

from prefect import task

from app.domains.base.models import utcnow
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.idempotency.service import IdempotencyService
from app.domains.jobs.service import JobService
from app.domains.organizations.service import OrganizationService
from app.domains.projects.models import Project
from app.domains.projects.service import ProjectService
from app.domains.users.service import APIKeyService, UserService
from app.domains.webhooks.service import WebhookEventService
from app.workers.policy import TASK_POLICY
from app.workers.tasks.batches import in_batches


@task(**TASK_POLICY)
def revoke_expired_api_keys(batch_size: int) -> int:
    now = utcnow()
    return in_batches(
        "API keys revoked", lambda uow: uow.service(APIKeyService).revoke_expired(now, batch_size), batch_size
    )


@task(**TASK_POLICY)
def delete_old_webhook_events(retention_days: int, batch_size: int) -> int:
    cutoff = utcnow() - timedelta(days=retention_days)
    return in_batches(
        "webhook events deleted",
        lambda uow: uow.service(WebhookEventService).delete_received_before(cutoff, batch_size),
        batch_size,
    )


@task(**TASK_POLICY)
def remove_old_tombstones(retention_days: int, batch_size: int) -> dict[str, int]:
    """Tombstoned users deleted longer ago than the retention, and their API keys."""
    cutoff = utcnow() - timedelta(days=retention_days)
    removed = {"users": 0, "api_keys": 0}

    def batch(uow: UnitOfWork) -> int:
        users, keys = uow.service(UserService).purge_tombstones(cutoff, batch_size)
        removed["users"] += users
        removed["api_keys"] += keys
        return users

    in_batches("tombstoned users removed", batch, batch_size)
    return removed


@task(name="archive-stale-projects", **TASK_POLICY)
def archive_stale_projects(draft_archive_days: int, batch_size: int) -> int:
    """Draft projects not updated for that many days, archived (those of live organizations: the
    system's view of projects)."""
    cutoff = utcnow() - timedelta(days=draft_archive_days)
    return in_batches(
        "stale draft projects archived",
        lambda uow: uow.service(ProjectService).archive_stale_drafts(cutoff, batch_size),
        batch_size,
    )


# Other domains' tables whose rows belong to an organization and go with it (its memberships and
# bound keys go anyway): the organizations domain imports no domain built on it, so the task names them.
ORGANIZATION_OWNED_TABLES = (Project,)


@task(name="remove-tombstoned-organizations", **TASK_POLICY)
def remove_tombstoned_organizations(retention_days: int, batch_size: int) -> int:
    """Organizations tombstoned longer ago than the retention, with their rows."""
    cutoff = utcnow() - timedelta(days=retention_days)
    return in_batches(
        "tombstoned organizations removed",
        lambda uow: uow.service(OrganizationService).purge_tombstones(
            cutoff, batch_size, owned_tables=ORGANIZATION_OWNED_TABLES
        ),
        batch_size,
    )


@task(**TASK_POLICY)
def delete_finished_jobs(retention_days: int, batch_size: int) -> int:
    """Jobs that succeeded or failed longer ago than the retention, with their results."""
    cutoff = utcnow() - timedelta(days=retention_days)
    return in_batches(
        "finished jobs deleted", lambda uow: uow.service(JobService).purge_finished(cutoff, batch_size), batch_size
    )


@task(**TASK_POLICY)
def delete_expired_idempotency_keys(batch_size: int) -> int:
    """Idempotency keys past their IDEMPOTENCY_KEY_TTL_HOURS, with their stored responses."""
    now = utcnow()
    return in_batches(
        "expired idempotency keys deleted",
        lambda uow: uow.service(IdempotencyService).purge_expired(now, batch_size),
        batch_size,
    )
