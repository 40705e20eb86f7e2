"""`clerk-reconciliation` (hourly): Clerk's lists of users, organizations and memberships applied to
the local ones, with the webhook's rules, to repair what missed deliveries left behind.

Every page is applied in its own transaction. Only after complete listings are the local users and
organizations that Clerk no longer has tombstoned, and the memberships it no longer lists ended
(each confirmed with Clerk first); after a failed listing nothing is and the run fails. Users come
first: a failed users listing stops the run before the organizations. Skipped while
CLERK_SECRET_KEY is unset.
"""

from collections.abc import Callable
from logging import Logger, LoggerAdapter
from typing import Any

from prefect import flow, get_run_logger

from app.infrastructure.clerk_backend_api import MAX_PAGE_SIZE, ClerkAPIError
from app.workers.outcomes import reported
from app.workers.policy import MINUTE
from app.workers.runtime import BatchSize, container
from app.workers.tasks.reconcile_clerk_organizations import (
    end_memberships,
    find_deleted_organizations,
    find_ended_memberships,
    sync_memberships,
    sync_organizations_page,
    tombstone_organizations,
)
from app.workers.tasks.reconcile_clerk_users import find_deleted_users, sync_users_page, tombstone_users

OUTCOMES = ("created", "updated", "unchanged", "ignored", "failed")

type RunLogger = Logger | LoggerAdapter[Logger]


# Hourly: over before the next hour's run starts, which a run still going would get cancelled.
@flow(name="clerk-reconciliation", timeout_seconds=50 * MINUTE)
@reported
def clerk_reconciliation(page_size: int = MAX_PAGE_SIZE, batch_size: BatchSize = None) -> dict[str, Any]:
    """Counts: created, updated, unchanged, ignored (tombstoned here, present in Clerk: left
    deleted), failed (could not be applied, see the log) and tombstoned (gone from Clerk) for users;
    the same under `organizations`, and under `memberships` with `ended` (no longer listed)."""
    log = get_run_logger()
    settings = container().settings
    if settings.clerk_secret_key is None:
        log.warning("clerk-reconciliation skipped: CLERK_SECRET_KEY is not set")
        return {"skipped": "CLERK_SECRET_KEY is not set"}
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    size = batch_size or settings.worker_batch_size
    counts: dict[str, Any] = _list_and_apply("users", sync_users_page, page_size, log)
    listed = counts.pop("ids")
    deleted = find_deleted_users(sorted(listed), size)
    counts["tombstoned"] = tombstone_users(deleted, size) if deleted else 0
    log.info("users done: %d listed; %s", len(listed), counts)
    counts["organizations"], counts["memberships"] = _reconcile_organizations(page_size, size, log)
    log.info("clerk-reconciliation done: %s", counts)
    return counts


def _list_and_apply(
    kind: str, sync_page: Callable[[int, int], dict[str, Any]], page_size: int, log: RunLogger
) -> dict[str, Any]:
    """Every page of Clerk's `kind` applied in turn; the counts, and the Clerk ids listed in `ids`."""
    counts: dict[str, Any] = dict.fromkeys(OUTCOMES, 0)
    listed: set[str] = set()
    offset = 0
    while True:
        try:
            page = sync_page(offset, page_size)
        except ClerkAPIError as error:
            log.error(
                "listing Clerk's %s failed at offset %d: %s. Nothing tombstoned; the %d pages before it "
                "were applied: %s",
                kind,
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
            log.info("Clerk %s %d to %d applied; so far: %s", kind, offset + 1, offset + page["size"], counts)
        if page["size"] < page_size:
            break
        offset += page_size
    return {**counts, "ids": listed}


def _reconcile_organizations(page_size: int, size: int, log: RunLogger) -> tuple[dict[str, int], dict[str, int]]:
    """Organizations, then each listed organization's memberships (`page_size` organizations a
    task); only once every listing is complete, the tombstones and the ended memberships."""
    organizations: dict[str, Any] = _list_and_apply("organizations", sync_organizations_page, page_size, log)
    listed = sorted(organizations.pop("ids"))
    memberships = dict.fromkeys(OUTCOMES, 0)
    absent: list[tuple[str, str]] = []
    for start in range(0, len(listed), page_size):
        chunk = listed[start : start + page_size]
        try:
            done = sync_memberships(chunk, page_size, size)
        except ClerkAPIError as error:
            log.error("listing Clerk's memberships failed: %s. Nothing tombstoned or ended", error)
            raise
        for outcome in OUTCOMES:
            memberships[outcome] += done.get(outcome, 0)
        absent += done["absent"]
        log.info("memberships of %d organizations applied; so far: %s", start + len(chunk), memberships)
    deleted = find_deleted_organizations(listed, size)
    organizations["tombstoned"] = tombstone_organizations(deleted, size) if deleted else 0
    ended = find_ended_memberships(absent) if absent else []
    memberships["ended"] = end_memberships(ended, size) if ended else 0
    log.info("organizations done: %d listed; %s; memberships: %s", len(listed), organizations, memberships)
    return organizations, memberships
