"""The reconciliation of local organizations and memberships with Clerk's own lists (the
clerk-reconciliation flow): each organization and membership Clerk lists is applied with the
webhook's rules (`ClerkOrganizationSync`); the local organizations Clerk no longer has are found and
tombstoned, and the memberships Clerk no longer lists for an organization are found and ended.
Reserved to the system and admins: the flow's units act as `Actor.system()`.

The caller decides when something is gone: only after a complete listing, and after asking Clerk
again (offset paging is no snapshot). These methods find candidates and apply the decision.
"""

from collections.abc import Iterable, Iterator, Set
from contextlib import contextmanager
from functools import cached_property
from typing import Any, cast

import msgspec
from sqlalchemy import Select, bindparam, select
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from app.domains.base.actors import require_admin
from app.domains.base.models import utcnow
from app.domains.base.service import ServiceBase
from app.domains.organizations.clerk_organization_sync import (
    ORGANIZATION_BY_CLERK_ID,
    ClerkMembership,
    ClerkOrganization,
    ClerkOrganizationSync,
)
from app.domains.organizations.models import Membership, Organization
from app.domains.organizations.service import MembershipService
from app.domains.users.clerk_user_reconciliation import Reconciled
from app.domains.users.models import User
from app.domains.webhooks.exceptions import InvalidPayloadError

_LIVE_ORGANIZATION_IDS = (
    select(col(Organization.clerk_id))
    .where(col(Organization.deleted_at).is_(None), col(Organization.clerk_id) > bindparam("after"))
    .order_by(col(Organization.clerk_id))
    .limit(bindparam("limit"))
)
# The Clerk ids of the users with a live membership in one organization (by its Clerk id). The
# column is `str | None`; the query selects no NULL, so its rows are `str`.
_LIVE_MEMBER_IDS = cast(
    Select[str],
    select(col(User.clerk_id))
    .join(Membership, col(Membership.user_id) == col(User.id))
    .join(Organization, col(Organization.id) == col(Membership.organization_id))
    .where(
        col(Organization.clerk_id) == bindparam("organization"),
        col(Membership.deleted_at).is_(None),
        col(User.clerk_id).is_not(None),
        col(User.clerk_id) > bindparam("after"),
    )
    .order_by(col(User.clerk_id))
    .limit(bindparam("limit")),
)
# The membership of an (organization, user) pair, both named by their Clerk ids.
_MEMBERSHIP_OF_CLERK_PAIR = (
    select(Membership)
    .join(Organization, col(Organization.id) == col(Membership.organization_id))
    .join(User, col(User.id) == col(Membership.user_id))
    .where(col(Organization.clerk_id) == bindparam("organization"), col(User.clerk_id) == bindparam("user"))
    .with_for_update(of=Membership)
)


class ClerkOrganizationReconciliation(ServiceBase):
    """`uow.service(ClerkOrganizationReconciliation)` on a unit acting as the system (or an admin)."""

    @cached_property
    def sync(self) -> ClerkOrganizationSync:
        return self.uow.service(ClerkOrganizationSync, actor=self.actor)

    # -- applying what Clerk lists ---------------------------------------------------------------

    def reconcile_organization(self, payload: Any) -> Reconciled:
        """Apply one Organization object of Clerk's list with the webhook's rules (`upsert_organization`).

        Raises a DomainError when it cannot be applied: the caller must then roll its unit of work back.
        """
        require_admin(self.actor)
        data = _convert(payload, ClerkOrganization, "organization")
        before = self.session.scalars(ORGANIZATION_BY_CLERK_ID.with_for_update(), {"clerk_id": data.id}).one_or_none()
        # As for users: a no-op writes nothing, so `updated_at` tells an update from a no-op.
        written_at = before.updated_at if before is not None else None
        with _refused_values_as_invalid_payload():
            self.sync.upsert_organization(data)
        if before is None:
            return Reconciled.CREATED
        if before.deleted_at is not None:
            return Reconciled.IGNORED
        return Reconciled.UNCHANGED if before.updated_at == written_at else Reconciled.UPDATED

    def reconcile_membership(self, payload: Any) -> Reconciled:
        """Apply one OrganizationMembership object of Clerk's list with the webhook's rules
        (`upsert_membership`: its organization and user are created if unknown). IGNORED: its
        organization, its user or this membership was deleted here (a deletion is final)."""
        require_admin(self.actor)
        data = _convert(payload, ClerkMembership, "membership")
        pair = {"organization": data.organization.id, "user": data.public_user_data.user_id}
        before = self.session.scalars(_MEMBERSHIP_OF_CLERK_PAIR, pair).one_or_none()
        written_at = before.updated_at if before is not None else None
        with _refused_values_as_invalid_payload():
            self.sync.upsert_membership(data)
        if before is None:
            created = self.session.scalars(_MEMBERSHIP_OF_CLERK_PAIR, pair).one_or_none()
            return Reconciled.CREATED if created is not None else Reconciled.IGNORED
        if before.updated_at != written_at:
            return Reconciled.UPDATED
        user = self.session.get(User, before.user_id)
        if before.deleted_at is not None or (user is not None and user.deleted_at is not None):
            return Reconciled.IGNORED
        return Reconciled.UNCHANGED

    # -- organizations Clerk no longer has -------------------------------------------------------

    def organizations_absent_from(self, listed: Set[str], limit: int, after: str = "") -> tuple[list[str], str | None]:
        """One batch of the local live organizations whose Clerk id is not in `listed`: scans up to
        `limit` of them in Clerk-id order from `after`, and returns the absent ids and where the
        next batch starts (None: the scan is done). Reads only."""
        require_admin(self.actor)
        batch = list(self.session.scalars(_LIVE_ORGANIZATION_IDS, {"after": after, "limit": limit}))
        return [clerk_id for clerk_id in batch if clerk_id not in listed], (batch[-1] if len(batch) == limit else None)

    def tombstone_deleted(self, clerk_ids: Iterable[str]) -> int:
        """Tombstone the organizations Clerk no longer has (`tombstone_organization`: memberships
        gone, bound API keys revoked); ids already tombstoned or unknown here are skipped. Returns
        how many were tombstoned."""
        require_admin(self.actor)
        done = 0
        for clerk_id in clerk_ids:
            statement = ORGANIZATION_BY_CLERK_ID.with_for_update()
            organization = self.session.scalars(statement, {"clerk_id": clerk_id}).one_or_none()
            if organization is not None and organization.deleted_at is None:
                self.sync.tombstone_organization(organization)
                done += 1
        return done

    # -- memberships Clerk no longer lists -------------------------------------------------------

    def members_absent_from(
        self, organization: str, listed: Set[str], limit: int, after: str = ""
    ) -> tuple[list[str], str | None]:
        """One batch of the users (Clerk ids) with a live membership in `organization` (a Clerk id)
        whose id is not in `listed`, the users Clerk listed as its members; memberships known from
        a session token only count too. Scans up to `limit` in Clerk-id order from `after`; returns
        the absent ids and where the next batch starts (None: done). Reads only."""
        require_admin(self.actor)
        values = {"organization": organization, "after": after, "limit": limit}
        batch = list(self.session.scalars(_LIVE_MEMBER_IDS, values))
        return [clerk_id for clerk_id in batch if clerk_id not in listed], (batch[-1] if len(batch) == limit else None)

    def end_memberships(self, pairs: Iterable[tuple[str, str]]) -> int:
        """End the memberships of these (organization, user) Clerk-id pairs: `deleted_at` set, as
        `organizationMembership.deleted` would. Ended or unknown pairs are skipped. Returns how
        many were ended."""
        require_admin(self.actor)
        memberships = self.uow.service(MembershipService, actor=self.actor)
        done = 0
        for organization, user in pairs:
            pair = {"organization": organization, "user": user}
            membership = self.session.scalars(_MEMBERSHIP_OF_CLERK_PAIR, pair).one_or_none()
            if membership is not None and membership.deleted_at is None:
                memberships.apply_changes(membership, {"deleted_at": utcnow()})
                done += 1
        return done


def _convert[T](payload: Any, struct: type[T], what: str) -> T:
    try:
        return msgspec.convert(payload, struct)
    except msgspec.ValidationError as error:
        raise InvalidPayloadError(f"not a Clerk {what}: {error}") from error


@contextmanager
def _refused_values_as_invalid_payload() -> Iterator[None]:
    """A value the database refuses (PostgreSQL's DataError) is the payload's fault."""
    try:
        yield
    except sa_exc.DataError as error:
        raise InvalidPayloadError(str(error.orig).splitlines()[0]) from error
