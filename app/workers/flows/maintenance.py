"""`maintenance` (daily): expired keys revoked, old webhook deliveries and old tombstones (users,
organizations) removed, stale draft projects archived, finished jobs deleted."""

from prefect import flow, get_run_logger

from app.workers.runtime import BatchSize, container
from app.workers.tasks.maintenance import (
    archive_stale_projects,
    delete_finished_jobs,
    delete_old_webhook_events,
    remove_old_tombstones,
    remove_tombstoned_organizations,
    revoke_expired_api_keys,
)


@flow(name="maintenance")
def maintenance(batch_size: BatchSize = None) -> dict[str, int]:
    """Counts of each change; the retention periods are settings."""
    settings = container().settings
    size = batch_size or settings.worker_batch_size
    tombstones = remove_old_tombstones(settings.tombstone_retention_days, size)
    counts = {
        "api_keys_revoked": revoke_expired_api_keys(size),
        "webhook_events_deleted": delete_old_webhook_events(settings.webhook_events_retention_days, size),
        "tombstoned_users_removed": tombstones["users"],
        "their_api_keys_removed": tombstones["api_keys"],
        "tombstoned_organizations_removed": remove_tombstoned_organizations(settings.tombstone_retention_days, size),
        "projects_archived": archive_stale_projects(settings.project_draft_archive_days, size),
        "finished_jobs_deleted": delete_finished_jobs(settings.job_retention_days, size),
    }
    get_run_logger().info("maintenance done: %s", counts)
    return counts
