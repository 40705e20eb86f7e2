"""The clerk-reconciliation flow's tasks for users: Clerk's pages of users applied, the users Clerk
no longer has found and tombstoned (`ClerkUserReconciliation` holds the rules). Each task builds its
own Backend API client from the container's settings (the secret key never travels as a parameter)
and its own units of work; `clerk_api` and `apply_page` serve the organizations' tasks too."""

from collections import Counter
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger, task

from app.domains.base.exceptions import DomainError
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.clerk_user_reconciliation import ClerkUserReconciliation, Reconciled
from app.infrastructure.clerk_backend_api import Backoff, ClerkAPI
from app.workers.policy import TASK_POLICY
from app.workers.runtime import container, unit_of_work

# How failed requests are retried; tests swap in one that does not really wait.
BACKOFF = Backoff()


def clerk_api() -> ClerkAPI:
    settings = container().settings
    if settings.clerk_secret_key is None:
        raise RuntimeError("CLERK_SECRET_KEY is not set")
    return ClerkAPI(
        settings.clerk_secret_key.get_secret_value(), settings.clerk_api_url, backoff=BACKOFF, log=get_run_logger()
    )


class _PageAgainError(Exception):
    """An object of the page could not be applied: roll the page back, apply it again without it."""


def apply_page(
    items: list[dict[str, Any]], kind: str, reconcile: Callable[[UnitOfWork, dict[str, Any]], Reconciled]
) -> Counter[str]:
    """Apply one page of Clerk's objects (`reconcile(uow, item)` each) in one transaction.

    An object that cannot be applied (a DomainError: an e-mail another user holds...) is counted as
    failed and the page is applied again without it: one transaction per page on every backend
    (SQLite's driver cannot nest savepoints in a transaction reliably), and one bad object does not
    fail the others. Returns a count per outcome, `failed` included.
    """
    failed: dict[int, str] = {}  # position in the page -> why
    while True:
        counts: Counter[str] = Counter()
        try:
            with unit_of_work() as uow:
                for position, item in enumerate(items):
                    if position in failed:
                        continue
                    try:
                        counts[reconcile(uow, item).value] += 1
                    except DomainError as error:
                        failed[position] = error.detail
                        raise _PageAgainError from error
        except _PageAgainError:
            continue
        break
    log = get_run_logger()
    for position, detail in failed.items():
        log.warning("Clerk %s %s not applied: %s", kind, items[position].get("id"), detail)
    counts["failed"] = len(failed)
    return counts


def _reconcile_user(uow: UnitOfWork, user: dict[str, Any]) -> Reconciled:
    return uow.service(ClerkUserReconciliation).reconcile_user(user)


@task(**TASK_POLICY)
def sync_users_page(offset: int, limit: int) -> dict[str, Any]:
    """Fetch one page of Clerk's users and apply it in one transaction (`apply_page`).

    Returns `size` (users listed), `ids` (their Clerk ids, failed ones included: they still exist
    in Clerk) and a count per outcome.
    """
    with clerk_api() as clerk:
        users = clerk.list_users(limit, offset)
    counts = apply_page(users, "user", _reconcile_user)
    ids = [user["id"] for user in users if isinstance(user.get("id"), str)]
    return {"size": len(users), "ids": ids, **counts}


@task(**TASK_POLICY)
def find_deleted_users(listed: list[str], batch_size: int) -> list[str]:
    """Local Clerk users missing from a complete listing that Clerk confirms it no longer has.

    Offset paging is no snapshot: a user deleted in Clerk during the listing shifts the next pages,
    and one existing user may be skipped; a user created meanwhile may be missed. Each absent user
    is therefore looked up by id before anything is tombstoned (a tombstone is final).
    """
    seen = set(listed)
    absent: list[str] = []
    after: str | None = ""
    while after is not None:
        with unit_of_work() as uow:
            batch, after = uow.service(ClerkUserReconciliation).absent_from(seen, batch_size, after)
        absent += batch
    if not absent:
        return []
    with clerk_api() as clerk:
        still_there = {user.get("id") for user in clerk.users_with_ids(absent)}
    if still_there:
        get_run_logger().info("%d users absent from the listing still exist in Clerk", len(still_there))
    return [clerk_id for clerk_id in absent if clerk_id not in still_there]


@task(**TASK_POLICY)
def tombstone_users(clerk_ids: list[str], batch_size: int) -> int:
    """Tombstone these users, `batch_size` per transaction."""
    done = 0
    for start in range(0, len(clerk_ids), batch_size):
        with unit_of_work() as uow:
            done += uow.service(ClerkUserReconciliation).tombstone_deleted(clerk_ids[start : start + batch_size])
        get_run_logger().info("users deleted in Clerk tombstoned: %d so far", done)
    return done
