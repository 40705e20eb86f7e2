"""The clerk-reconciliation flow's tasks for organizations and memberships: Clerk's pages applied,
the organizations Clerk no longer has found and tombstoned, the memberships it no longer lists found
and ended (`ClerkOrganizationReconciliation` holds the rules). Built like the users' tasks, with
their Backend API client (`clerk_api`) and their page-at-a-time application (`apply_page`)."""

from collections import Counter, defaultdict
from typing import Any

from prefect import get_run_logger, task

from app.domains.base.unit_of_work import UnitOfWork
from app.domains.organizations.clerk_organization_reconciliation import ClerkOrganizationReconciliation
from app.domains.users.clerk_user_reconciliation import Reconciled
from app.infrastructure.clerk_backend_api import ClerkAPIError
from app.workers.policy import TASK_POLICY
from app.workers.runtime import unit_of_work
from app.workers.tasks.reconcile_clerk_users import apply_page, clerk_api


def _reconcile_organization(uow: UnitOfWork, organization: dict[str, Any]) -> Reconciled:
    return uow.service(ClerkOrganizationReconciliation).reconcile_organization(organization)


def _reconcile_membership(uow: UnitOfWork, membership: dict[str, Any]) -> Reconciled:
    return uow.service(ClerkOrganizationReconciliation).reconcile_membership(membership)


@task(**TASK_POLICY)
def sync_organizations_page(offset: int, limit: int) -> dict[str, Any]:
    """Fetch one page of Clerk's organizations and apply it in one transaction (`apply_page`).

    Returns `size` (organizations listed), `ids` (their Clerk ids, failed ones included: they
    still exist in Clerk) and a count per outcome.
    """
    with clerk_api() as clerk:
        organizations = clerk.list_organizations(limit, offset)
    counts = apply_page(organizations, "organization", _reconcile_organization)
    ids = [organization["id"] for organization in organizations if isinstance(organization.get("id"), str)]
    return {"size": len(organizations), "ids": ids, **counts}


@task(**TASK_POLICY)
def sync_memberships(organization_ids: list[str], limit: int, batch_size: int) -> dict[str, Any]:
    """List the memberships of each of these organizations, `limit` a page, each page applied in
    one transaction; for an organization whose memberships were listed completely, find its local
    live members Clerk did not list (to confirm, then end).

    A listing that keeps failing raises (ClerkAPIError), so the flow ends nothing. An organization
    Clerk no longer has (404) is skipped: its listing is incomplete, and a later run tombstones it.
    Returns `size` (memberships listed), a count per outcome, and `absent`: [organization, user]
    Clerk-id pairs.
    """
    log = get_run_logger()
    counts: Counter[str] = Counter()
    absent: list[tuple[str, str]] = []
    size = 0
    with clerk_api() as clerk:
        for organization in organization_ids:
            listed: set[str] = set()  # its members' user ids, failed memberships included
            try:
                for page in clerk.organization_membership_pages(organization, limit):
                    counts.update(apply_page(page, "membership", _reconcile_membership))
                    listed.update(_user_ids(page))
                    size += len(page)
            except ClerkAPIError as error:
                if error.status != 404:
                    raise
                log.info(
                    "organization %s deleted in Clerk during the run: its memberships are left as they are",
                    organization,
                )
                continue
            absent += [(organization, user) for user in _members_absent(organization, listed, batch_size)]
    return {"size": size, "absent": absent, **counts}


def _user_ids(memberships: list[dict[str, Any]]) -> list[str]:
    found = []
    for membership in memberships:
        user = membership.get("public_user_data")
        if isinstance(user, dict) and isinstance(user.get("user_id"), str):
            found.append(user["user_id"])
    return found


def _members_absent(organization: str, listed: set[str], batch_size: int) -> list[str]:
    absent: list[str] = []
    after: str | None = ""
    while after is not None:
        with unit_of_work() as uow:
            reconciliation = uow.service(ClerkOrganizationReconciliation)
            batch, after = reconciliation.members_absent_from(organization, listed, batch_size, after)
        absent += batch
    return absent


@task(**TASK_POLICY)
def find_deleted_organizations(listed: list[str], batch_size: int) -> list[str]:
    """Local live organizations missing from a complete listing that Clerk confirms it no longer
    has (`GET /organizations/{id}` answers 404): offset paging is no snapshot, and a tombstone is final."""
    seen = set(listed)
    absent: list[str] = []
    after: str | None = ""
    while after is not None:
        with unit_of_work() as uow:
            batch, after = uow.service(ClerkOrganizationReconciliation).organizations_absent_from(
                seen, batch_size, after
            )
        absent += batch
    if not absent:
        return []
    with clerk_api() as clerk:
        gone = [clerk_id for clerk_id in absent if clerk.organization(clerk_id) is None]
    if len(gone) < len(absent):
        get_run_logger().info("%d organizations absent from the listing still exist in Clerk", len(absent) - len(gone))
    return gone


@task(**TASK_POLICY)
def tombstone_organizations(clerk_ids: list[str], batch_size: int) -> int:
    """Tombstone these organizations, `batch_size` per transaction."""
    done = 0
    for start in range(0, len(clerk_ids), batch_size):
        with unit_of_work() as uow:
            done += uow.service(ClerkOrganizationReconciliation).tombstone_deleted(
                clerk_ids[start : start + batch_size]
            )
        get_run_logger().info("organizations deleted in Clerk tombstoned: %d so far", done)
    return done


@task(**TASK_POLICY)
def find_ended_memberships(absent: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (organization, user) pairs missing from their organization's listing that Clerk confirms
    are no longer memberships: the user's own memberships (`GET /users/{id}/organization_memberships`,
    none once the user is gone) do not name the organization. One lookup per user."""
    by_user: defaultdict[str, set[str]] = defaultdict(set)
    for organization, user in absent:
        by_user[user].add(organization)
    ended: list[tuple[str, str]] = []
    with clerk_api() as clerk:
        for user, organizations in by_user.items():
            still = {_organization_id(membership) for membership in clerk.user_organization_memberships(user)}
            ended += [(organization, user) for organization in sorted(organizations - still)]
    if len(ended) < len(absent):
        get_run_logger().info("%d memberships absent from the listings still exist in Clerk", len(absent) - len(ended))
    return ended


def _organization_id(membership: dict[str, Any]) -> str | None:
    organization = membership.get("organization")
    return organization.get("id") if isinstance(organization, dict) else None


@task(**TASK_POLICY)
def end_memberships(pairs: list[tuple[str, str]], batch_size: int) -> int:
    """End the memberships of these (organization, user) pairs, `batch_size` per transaction."""
    done = 0
    for start in range(0, len(pairs), batch_size):
        with unit_of_work() as uow:
            done += uow.service(ClerkOrganizationReconciliation).end_memberships(pairs[start : start + batch_size])
        get_run_logger().info("memberships Clerk no longer lists ended: %d so far", done)
    return done
