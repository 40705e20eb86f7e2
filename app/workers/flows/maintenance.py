"""`maintenance` (daily): expired keys revoked, old webhook deliveries and old tombstones (users,
organizations) removed, stale draft projects archived, finished jobs and expired idempotency keys
deleted.

The steps are independent: one that fails (after its retries) does not keep the others from
running; the run then ends Failed naming it (app/workers/outcomes.py)."""

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from app.workers.outcomes import Steps, finish
from app.workers.policy import HOUR
from app.workers.runtime import BatchSize, container
from app.workers.tasks.maintenance import (
    archive_stale_projects,
    delete_expired_idempotency_keys,
    delete_finished_jobs,
    delete_old_webhook_events,
    remove_old_tombstones,
    remove_tombstoned_organizations,
    revoke_expired_api_keys,
)


# Daily: two hours is far more than a day's work needs (100 000 expired keys: 11 s) and far less than a day.
@flow(name="maintenance", timeout_seconds=2 * HOUR)
def maintenance(batch_size: BatchSize = None) -> dict[str, Any] | State[Any]:
    """Counts of each change; the retention periods are settings."""
    settings = container().settings
    size = batch_size or settings.worker_batch_size
    steps = Steps()
    tombstones = steps.run(remove_old_tombstones, settings.tombstone_retention_days, size) or {}
    counts = {
        "api_keys_revoked": steps.run(revoke_expired_api_keys, size),
        "webhook_events_deleted": steps.run(delete_old_webhook_events, settings.webhook_events_retention_days, size),
        "tombstoned_users_removed": tombstones.get("users"),
        "their_api_keys_removed": tombstones.get("api_keys"),
        "tombstoned_organizations_removed": steps.run(
            remove_tombstoned_organizations, settings.tombstone_retention_days, size
        ),
        "projects_archived": steps.run(archive_stale_projects, settings.project_draft_archive_days, size),
        "finished_jobs_deleted": steps.run(delete_finished_jobs, settings.job_retention_days, size),
        "idempotency_keys_deleted": steps.run(delete_expired_idempotency_keys, size),
    }
    return finish(counts, steps)
