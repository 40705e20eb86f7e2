"""Use cases of the organizations domain: reading organizations and their members. Clerk writes
them (`clerk_organization_sync.py`), as the system."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, delete, select
from sqlmodel import col

from app.domains.base.actors import require_admin
from app.domains.base.exceptions import NotFoundError
from app.domains.base.lists import ListParams, Page
from app.domains.base.service import Service
from app.domains.organizations.models import Membership, Organization
from app.domains.organizations.repository import MembershipRepository, OrganizationRepository
from app.domains.organizations.rules import memberships_policy, organizations_policy
from app.domains.users.models import APIKey, User


class OrganizationService(Service[Organization]):
    repository_type = OrganizationRepository
    policy = organizations_policy
    sortable_fields = frozenset({"created_at", "updated_at", "name", "slug"})
    search_fields = frozenset({"name", "slug"})

    def default_filters(self) -> list[ColumnElement[bool]]:
        return [col(Organization.deleted_at).is_(None)]

    def to_model_on_create(self, data: Any) -> Any:
        require_admin(self.actor)  # Clerk's organizations: the sync writes them, as the system
        return data

    def to_model_on_update(self, data: Any) -> Any:
        require_admin(self.actor)
        return data

    def purge_tombstones(self, deleted_before: Any, limit: int, owned_tables: Sequence[type[Any]]) -> int:
        """Delete up to `limit` organizations tombstoned before then, with the keys bound to them and
        the rows of `owned_tables` (each with an `organization_id`) that belonged to them."""
        require_admin(self.actor)
        tombstoned = col(Organization.deleted_at) < deleted_before
        batch = list(
            self.session.scalars(
                select(col(Organization.id)).where(tombstoned).order_by(col(Organization.id)).limit(limit)
            )
        )
        if not batch:
            return 0
        tables: list[Any] = [*owned_tables, Membership, APIKey]
        for table in tables:
            self.session.execute(delete(table).where(table.organization_id.in_(batch)))
        return self.affected_rows(delete(Organization).where(col(Organization.id).in_(batch)))


class MembershipService(Service[Membership]):
    repository_type = MembershipRepository
    policy = memberships_policy
    sortable_fields = frozenset({"created_at", "updated_at", "role"})

    def default_filters(self) -> list[ColumnElement[bool]]:
        """Live memberships of users who are not deleted."""
        live_users = select(col(User.id)).where(col(User.deleted_at).is_(None))
        return [col(Membership.deleted_at).is_(None), col(Membership.user_id).in_(live_users)]

    def to_model_on_create(self, data: Any) -> Any:
        require_admin(self.actor)
        return data

    def to_model_on_update(self, data: Any) -> Any:
        require_admin(self.actor)
        return data

    def members(self, organization_id: UUID, params: ListParams) -> Page[dict[str, Any]]:
        """A page of the organization's members, each with its user's public profile. Members are
        the organization's data: visible from inside it (its active organization) or to app admins."""
        self.uow.service(OrganizationService, actor=self.actor).get(organization_id)  # 404 when not visible
        if not self.actor.is_admin and self.actor.organization_id != organization_id:
            raise NotFoundError("Organization not found")
        page = self.page(params, col(Membership.organization_id) == organization_id)
        ids = [membership.user_id for membership in page.items]
        users = {user.id: user for user in self.session.scalars(select(User).where(col(User.id).in_(ids)))}
        return page.map(lambda membership: member_view(membership, users[membership.user_id]))


def member_view(membership: Membership, user: User) -> dict[str, Any]:
    return {
        "id": membership.id,
        "organization_id": membership.organization_id,
        "user_id": membership.user_id,
        "role": membership.role,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "image_url": user.image_url,
        "created_at": membership.created_at,
    }
