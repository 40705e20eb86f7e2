"""Rules of the organizations domain: roles as Clerk names them, and the tenant rule every domain
whose rows belong to an organization applies (`OfActiveOrganization`).

The tenant rule: **the active organization is the tenant of the request.** An actor with one (a
session's `o` claim, a key bound to one) touches only that organization's rows; an actor without one
touches none; app admins touch every live organization's rows. Members read; organization admins
(and app admins) write: `ensure_can_write_in_organization`.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlmodel import col

from app.domains.base.actors import ORGANIZATION_ADMIN, Actor
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.organizations.models import Membership, Organization

ORGANIZATION_MEMBER = "member"
_CLERK_ROLES = {"org:admin": ORGANIZATION_ADMIN, "org:member": ORGANIZATION_MEMBER, "basic_member": ORGANIZATION_MEMBER}


def normalized_role(clerk_role: str) -> str:
    """`admin` or `member` for Clerk's built-in roles, whatever their spelling (webhooks and the
    Backend API say `org:admin` / `org:member`, older payloads `admin` / `basic_member`, session
    tokens v2 `admin` / `member`); a custom role is kept as Clerk names it and grants what a member
    gets."""
    return _CLERK_ROLES.get(clerk_role, clerk_role)


def _live_organization_ids() -> Any:
    return select(col(Organization.id)).where(col(Organization.deleted_at).is_(None))


@dataclass(frozen=True, slots=True)
class OfActiveOrganization:
    """The tenant rule as a row policy, for tables whose `organization_field` names the owner."""

    organization_field: str = "organization_id"

    def row_filter(self, actor: Actor, model: type[Any]) -> ColumnElement[bool] | None:
        owner: ColumnElement[Any] = getattr(model, self.organization_field)
        if actor.is_admin:  # every organization's, but not a deleted one's (kept until purged)
            return owner.in_(_live_organization_ids())
        if actor.organization_id is None:
            return false()
        return owner == actor.organization_id

    def allows(self, actor: Actor, row: Any) -> bool:
        owner = getattr(row, self.organization_field)
        return actor.is_admin or (actor.organization_id is not None and owner == actor.organization_id)


def ensure_can_write_in_organization(actor: Actor) -> None:
    """Writes to an organization's data: its admins, and app admins."""
    if actor.is_admin or actor.is_organization_admin:
        return
    if actor.organization_id is None:
        raise PermissionDeniedError(
            "an organization must be active: choose one in the session, or use a key bound to one",
            reason="no_active_organization",
        )
    raise PermissionDeniedError("only the organization's admins may change its data", reason="organization_role")


@dataclass(frozen=True, slots=True)
class MemberOf:
    """Organizations: an actor with an active organization sees that one; without one, every
    organization its user belongs to (to choose from); app admins see all. Only the Clerk sync
    (the system) writes them."""

    def row_filter(self, actor: Actor, model: type[Any]) -> ColumnElement[bool] | None:
        if actor.is_admin:
            return None
        if actor.organization_id is not None:
            return col(Organization.id) == actor.organization_id
        if actor.user_id is None:
            return false()
        mine = select(col(Membership.organization_id)).where(
            col(Membership.user_id) == actor.user_id, col(Membership.deleted_at).is_(None)
        )
        return col(Organization.id).in_(mine)

    def allows(self, actor: Actor, row: Any) -> bool:
        return actor.is_admin


organizations_policy = MemberOf()
# Members (the memberships of an organization) are the organization's data: its tenant rule.
memberships_policy = OfActiveOrganization("organization_id")
