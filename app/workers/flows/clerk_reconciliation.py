"""`clerk-reconciliation` (hourly): Clerk's list of users applied to the local ones, with the
webhook's rules, to repair what missed deliveries left behind.

Every page is applied in its own transaction. Only after a complete listing are the local users
that Clerk no longer has tombstoned (each confirmed by id first); after a failed listing nothing is
tombstoned and the run fails. Skipped while CLERK_SECRET_KEY is unset.
"""

from typing import Any

from prefect import flow, get_run_logger

from app.infrastructure.clerk_backend_api import MAX_PAGE_SIZE, ClerkAPIError
from app.workers.outcomes import reported
from app.workers.policy import MINUTE
from app.workers.runtime import BatchSize, container
from app.workers.tasks.reconcile_clerk_users import find_deleted_users, sync_users_page, tombstone_users

OUTCOMES = ("created", "updated", "unchanged", "ignored", "failed")


# Hourly: over before the next hour's run starts, which a run still going would get cancelled.
@flow(name="clerk-reconciliation", timeout_seconds=50 * MINUTE)
@reported
def clerk_reconciliation(page_size: int = MAX_PAGE_SIZE, batch_size: BatchSize = None) -> dict[str, Any]:
    """Counts: created, updated, unchanged, ignored (tombstoned here, present in Clerk: left
    deleted), failed (could not be applied, see the log) and tombstoned (gone from Clerk)."""
    log = get_run_logger()
    settings = container().settings
    if settings.clerk_secret_key is None:
        log.warning("clerk-reconciliation skipped: CLERK_SECRET_KEY is not set")
        return {"skipped": "CLERK_SECRET_KEY is not set"}
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    size = batch_size or settings.worker_batch_size
    counts = dict.fromkeys(OUTCOMES, 0)
    listed: set[str] = set()
    offset = 0
    while True:
        try:
            page = sync_users_page(offset, page_size)
        except ClerkAPIError as error:
            log.error(
                "listing Clerk's users failed at offset %d: %s. Nothing tombstoned; the %d pages "
                "before it were applied: %s",
                offset,
                error,
                offset // page_size,
                counts,
            )
            raise
        for outcome in OUTCOMES:
            counts[outcome] += page.get(outcome, 0)
        listed.update(page["ids"])
        if page["size"]:
            log.info("Clerk users %d to %d applied; so far: %s", offset + 1, offset + page["size"], counts)
        if page["size"] < page_size:
            break
        offset += page_size
    deleted = find_deleted_users(sorted(listed), size)
    counts["tombstoned"] = tombstone_users(deleted, size) if deleted else 0
    log.info("clerk-reconciliation done: %d users listed; %s", len(listed), counts)
    return counts
