"""Clerk's organizations and memberships applied to local ones: the `organization.*` and
`organizationMembership.*` webhook events (registered with the deliveries when this package is
imported), the active organization a session token names, and each organization and membership of
the reconciliation (`clerk_organization_reconciliation.py`).

The rules are the users': deliveries are at-least-once and unordered, so upsert by Clerk id, ignore
what is older than what is stored, and keep tombstones later events cannot undo. A membership that
arrives before its organization or its user is applied from the data it embeds.
"""

from datetime import datetime
from functools import cached_property
from typing import Annotated, Any

import msgspec
from sqlalchemy import and_, bindparam, delete, select, update
from sqlmodel import col

from app.domains.base.actors import Actor, require_admin
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.base.service import ServiceBase
from app.domains.organizations.models import Membership, Organization
from app.domains.organizations.rules import normalized_role
from app.domains.organizations.service import MembershipService, OrganizationService
from app.domains.users.clerk_user_sync import ClerkUserSync
from app.domains.users.models import APIKey, User
from app.domains.users.service import UserService
from app.domains.webhooks.clerk_deliveries import Applied, clerk_event_handlers
from app.domains.webhooks.models import Outcome
from app.domains.webhooks.schemas import NO_NUL, ClerkDeletedObject, ClerkId, Millis, from_millis

# Tombstones included, on purpose. Built once: constructing a statement costs more than running it.
ORGANIZATION_BY_CLERK_ID = select(Organization).where(col(Organization.clerk_id) == bindparam("clerk_id"))
_MEMBERSHIP_OF_PAIR = select(Membership).where(
    col(Membership.organization_id) == bindparam("organization_id"), col(Membership.user_id) == bindparam("user_id")
)
_MEMBERSHIP_OF_PAIR_FOR_UPDATE = _MEMBERSHIP_OF_PAIR.with_for_update()
# The session's active organization and the user's membership in it: one query.
_SESSION_ORGANIZATION = (
    select(Organization, Membership)
    .outerjoin(
        Membership,
        and_(col(Membership.organization_id) == col(Organization.id), col(Membership.user_id) == bindparam("user_id")),
    )
    .where(col(Organization.clerk_id) == bindparam("clerk_id"))
)

Text = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_NUL)]
URL = Annotated[str, msgspec.Meta(max_length=2048, pattern=NO_NUL)]
ClerkRole = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]


class ClerkOrganization(msgspec.Struct):
    """The part of Clerk's Organization object we keep; unknown fields are ignored."""

    id: ClerkId
    name: Text
    slug: Text | None = None
    image_url: URL | None = None
    created_at: Millis = None
    updated_at: Millis = None


class ClerkPublicUserData(msgspec.Struct):
    user_id: ClerkId
    first_name: Annotated[str, msgspec.Meta(max_length=100, pattern=NO_NUL)] | None = None
    last_name: Annotated[str, msgspec.Meta(max_length=100, pattern=NO_NUL)] | None = None
    image_url: URL | None = None


class ClerkMembership(msgspec.Struct):
    """Clerk's OrganizationMembership object: it embeds its organization and its user's public data."""

    id: ClerkId
    role: ClerkRole
    organization: ClerkOrganization
    public_user_data: ClerkPublicUserData
    created_at: Millis = None
    updated_at: Millis = None


class ClerkOrganizationSync(ServiceBase):
    """Applies Clerk's organizations and memberships to local ones, in the caller's unit of work
    (which commits). Its input was verified (a signed webhook, a verified session token, Clerk's own
    API), so it acts as the system: `uow.service(ClerkOrganizationSync, actor=Actor.system())`; any
    other actor is refused."""

    @cached_property
    def organizations(self) -> OrganizationService:
        require_admin(self.actor)
        return self.uow.service(OrganizationService, actor=self.actor)

    @cached_property
    def memberships(self) -> MembershipService:
        require_admin(self.actor)
        return self.uow.service(MembershipService, actor=self.actor)

    @cached_property
    def users(self) -> ClerkUserSync:
        return self.uow.service(ClerkUserSync, actor=self.actor)

    # -- the webhook events ----------------------------------------------------------------------

    def apply_organization(self, data: dict[str, Any]) -> Applied:
        """`organization.created`, `organization.updated`."""
        return self.upsert_organization(msgspec.convert(data, ClerkOrganization))[1]

    def apply_organization_deletion(self, data: dict[str, Any]) -> Applied:
        """`organization.deleted`."""
        return self.delete_organization(msgspec.convert(data, ClerkDeletedObject).id)

    def apply_membership(self, data: dict[str, Any]) -> Applied:
        """`organizationMembership.created`, `organizationMembership.updated`."""
        return self.upsert_membership(msgspec.convert(data, ClerkMembership))

    def apply_membership_deletion(self, data: dict[str, Any]) -> Applied:
        """`organizationMembership.deleted`: Clerk sends the whole membership; a bare `{id, deleted}`
        is applied to the membership of that id, if known."""
        if "organization" not in data:
            return self.delete_membership(msgspec.convert(data, ClerkDeletedObject).id)
        return self.upsert_membership(msgspec.convert(data, ClerkMembership), deleted=True)

    # -- organizations ---------------------------------------------------------------------------

    def upsert_organization(self, data: ClerkOrganization) -> tuple[Organization, Applied]:
        organization = self.ensure_organization(
            data.id, name=data.name, slug=data.slug, created_at=from_millis(data.created_at), lock=True
        )
        if organization.deleted_at is not None:
            return organization, (Outcome.IGNORED, "the organization was deleted in Clerk")
        updated_at = from_millis(data.updated_at)
        stored = organization.clerk_updated_at
        if updated_at is not None and stored is not None and updated_at < stored:
            return organization, (Outcome.IGNORED, "an update newer than this one is already applied")
        changes = {
            "name": data.name,
            "slug": data.slug,
            "image_url": data.image_url,
            "clerk_updated_at": updated_at or stored,
        }
        self.organizations.apply_changes(organization, changes)
        return organization, (Outcome.PROCESSED, None)

    def delete_organization(self, clerk_id: str) -> Applied:
        """Tombstone the organization, known or not (so a late event does not bring it back)."""
        organization = self.ensure_organization(clerk_id, lock=True)
        if organization.deleted_at is None:
            self.tombstone_organization(organization)
        return Outcome.PROCESSED, None

    def tombstone_organization(self, organization: Organization) -> None:
        """Its memberships go and the keys bound to it are revoked at once; its rows stay,
        unreachable, until the maintenance flow purges the organization after the retention.

        What the tombstone keeps is the same whatever arrived before the deletion (as a user's):
        its ids and the fact. Its name is reset to its Clerk id, as a deletion seen first makes it."""
        now = utcnow()
        self.session.execute(delete(Membership).where(col(Membership.organization_id) == organization.id))
        self.session.execute(
            update(APIKey)
            .where(col(APIKey.organization_id) == organization.id, col(APIKey.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        profile = {"name": organization.clerk_id, "slug": None, "image_url": None, "clerk_updated_at": None}
        self.organizations.apply_changes(organization, {**profile, "deleted_at": now})

    def ensure_organization(
        self,
        clerk_id: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        created_at: datetime | None = None,
        lock: bool = False,
    ) -> Organization:
        """The local organization for a Clerk id (tombstones included), created race-free on first
        sight. `lock` holds the row until commit (PostgreSQL), so concurrent events apply in turn."""
        organizations = self.organizations  # the actor is checked before any query
        statement = ORGANIZATION_BY_CLERK_ID.with_for_update() if lock else ORGANIZATION_BY_CLERK_ID
        organization = self.session.scalars(statement, {"clerk_id": clerk_id}).one_or_none()
        if organization is None:
            values: dict[str, Any] = {"clerk_id": clerk_id, "name": name or slug or clerk_id, "slug": slug}
            if created_at is not None:
                values["created_at"] = created_at
            organization = organizations.repository.insert_if_absent(values, unique_columns=("clerk_id",))
            if organization is None:  # a concurrent first sight inserted it: it has committed, read it
                organization = self.session.scalars(statement, {"clerk_id": clerk_id}).one()
        return organization

    # -- memberships -----------------------------------------------------------------------------

    def upsert_membership(self, data: ClerkMembership, *, deleted: bool = False) -> Applied:
        """Apply a membership (`deleted`: its deletion) with the organization and user it embeds."""
        organization, _ = self.upsert_organization(data.organization)
        if organization.deleted_at is not None:
            return Outcome.IGNORED, "the organization was deleted in Clerk"
        user = self.users.ensure_user(data.public_user_data.user_id)
        if user.deleted_at is not None:
            return Outcome.IGNORED, "the user was deleted in Clerk"
        self._fill_profile(user, data.public_user_data)
        values = {
            "role": normalized_role(data.role),
            "clerk_id": data.id,
            "clerk_created_at": from_millis(data.created_at),
            "clerk_updated_at": from_millis(data.updated_at),
        }
        if deleted:
            values["deleted_at"] = utcnow()
        membership = self._locked_membership(organization.id, user.id, values)
        if membership is None:
            return Outcome.PROCESSED, None  # created with these values
        changes = _membership_changes(membership, values, deleted=deleted)
        if isinstance(changes, str):
            return Outcome.IGNORED, changes
        self.memberships.apply_changes(membership, changes)
        return Outcome.PROCESSED, None

    def delete_membership(self, clerk_id: str) -> Applied:
        membership = self.session.scalars(
            select(Membership).where(col(Membership.clerk_id) == clerk_id).with_for_update()
        ).first()
        if membership is None:
            return Outcome.IGNORED, "unknown membership (the reconciliation removes it if Clerk no longer has it)"
        if membership.deleted_at is None:
            self.memberships.apply_changes(membership, {"deleted_at": utcnow()})
        return Outcome.PROCESSED, None

    def _locked_membership(self, organization_id: Any, user_id: Any, values: dict[str, Any]) -> Membership | None:
        """The pair's membership, locked; None when it did not exist and was created from `values`."""
        pair = {"organization_id": organization_id, "user_id": user_id}
        membership = self.session.scalars(_MEMBERSHIP_OF_PAIR_FOR_UPDATE, pair).one_or_none()
        if membership is not None:
            return membership
        inserted = self.memberships.repository.insert_if_absent(
            {**pair, **values}, unique_columns=("organization_id", "user_id")
        )
        if inserted is not None:
            return None
        return self.session.scalars(_MEMBERSHIP_OF_PAIR_FOR_UPDATE, pair).one()

    def _fill_profile(self, user: User, data: ClerkPublicUserData) -> None:
        """A user known only by its Clerk id (its own events have not arrived) takes the public
        profile the membership carries; the user's events then overwrite it."""
        empty = user.clerk_updated_at is None and not (
            user.email or user.first_name or user.last_name or user.image_url
        )
        if empty and (data.first_name or data.last_name or data.image_url):
            profile = {"first_name": data.first_name, "last_name": data.last_name, "image_url": data.image_url}
            self.uow.service(UserService, actor=self.actor).apply_changes(user, profile)

    # -- the session's active organization -------------------------------------------------------

    def session_organization(self, actor: Actor, clerk_id: str, slug: str | None, role: str) -> Actor:
        """The actor of a verified session token whose `o` claim names an active organization: in
        that organization, with the role stored here (the webhooks keep it current). An
        organization or membership not known yet is created from the claim, like a first-seen
        user: Clerk signed it less than a minute ago. One deleted here is refused: a deletion is
        final, and a token outlives it by up to its lifetime."""
        require_admin(self.actor)
        found = self.session.execute(_SESSION_ORGANIZATION, {"clerk_id": clerk_id, "user_id": actor.user_id}).first()
        membership: Membership | None = None
        if found is None:
            organization = self.ensure_organization(clerk_id, slug=slug)
        else:
            organization, membership = found[0], found[1]  # the membership is None when there is none
        if organization.deleted_at is not None:
            raise PermissionDeniedError("the session's active organization was deleted", reason="organization_deleted")
        if membership is None:
            values = {"role": normalized_role(role)}
            membership = self._membership_from_claim(organization.id, actor.user_id, values)
        if membership.deleted_at is not None:
            if actor.is_admin:  # app admins reach every organization, as their keys do
                return actor.in_organization(organization.id, None)
            raise PermissionDeniedError(
                "the session's user is no longer a member of its active organization", reason="not_a_member"
            )
        return actor.in_organization(organization.id, membership.role)

    def _membership_from_claim(self, organization_id: Any, user_id: Any, values: dict[str, Any]) -> Membership:
        pair = {"organization_id": organization_id, "user_id": user_id}
        membership = self.memberships.repository.insert_if_absent({**pair, **values}, unique_columns=tuple(pair))
        return membership or self.session.scalars(_MEMBERSHIP_OF_PAIR, pair).one()


def _membership_changes(membership: Membership, values: dict[str, Any], *, deleted: bool) -> dict[str, Any] | str:
    """What an event's `values` change on the pair's stored membership, or why they change nothing.

    The membership created last holds the pair (ties: the larger Clerk id), whatever order the
    events arrive in; within one membership the deletion is final and carries its last role, and
    updates apply in `updated_at` order."""
    if _is_a_newer_membership(membership, values):
        return {**values, "deleted_at": values.get("deleted_at")}  # a new membership replaces the old
    if membership.clerk_id is not None and membership.clerk_id != values["clerk_id"]:
        return "a membership created later holds this organization and user"
    if membership.deleted_at is not None:
        return "the membership was deleted in Clerk"
    if deleted:
        return values
    updated_at, stored_at = values["clerk_updated_at"], membership.clerk_updated_at
    if updated_at is not None and stored_at is not None and updated_at < stored_at:
        return "an update newer than this one is already applied"
    return {**values, "clerk_updated_at": updated_at or stored_at}


def _is_a_newer_membership(membership: Membership, values: dict[str, Any]) -> bool:
    """Whether the event is of another Clerk membership of the pair, created after the stored one.
    A row known from a token only (no Clerk id) that was ended (by the reconciliation, which does
    not know Clerk's id) is followed by any membership created after it ended: an invitation back."""
    if membership.clerk_id is None:
        created_at = values["clerk_created_at"]
        return membership.deleted_at is not None and created_at is not None and created_at > membership.deleted_at
    if membership.clerk_id == values["clerk_id"]:
        return False
    incoming = _creation_order(values["clerk_created_at"], values["clerk_id"])
    return incoming > _creation_order(membership.clerk_created_at, membership.clerk_id)


def _creation_order(created_at: datetime | None, clerk_id: str | None) -> tuple[float, str]:
    return (created_at.timestamp() if created_at is not None else float("-inf")), clerk_id or ""


clerk_event_handlers.register(
    ClerkOrganizationSync, ClerkOrganizationSync.apply_organization, "organization.created", "organization.updated"
)
clerk_event_handlers.register(
    ClerkOrganizationSync, ClerkOrganizationSync.apply_organization_deletion, "organization.deleted"
)
clerk_event_handlers.register(
    ClerkOrganizationSync,
    ClerkOrganizationSync.apply_membership,
    "organizationMembership.created",
    "organizationMembership.updated",
)
clerk_event_handlers.register(
    ClerkOrganizationSync, ClerkOrganizationSync.apply_membership_deletion, "organizationMembership.deleted"
)
