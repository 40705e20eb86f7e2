"""Use cases of the projects domain, shared by the API, the CLI and the flows. The tenant rule is
the service's row policy (`rules.py`), so every path obeys it."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, select, update
from sqlmodel import col

from app.domains.base.actors import AuthMethod
from app.domains.base.exceptions import DomainValidationError, PermissionDeniedError
from app.domains.base.service import Service
from app.domains.organizations.models import Organization
from app.domains.organizations.rules import ensure_can_write_in_organization
from app.domains.projects.models import Project, ProjectStatus
from app.domains.projects.repository import ProjectRepository
from app.domains.projects.rules import projects_policy

# What a change may set; the owner and the author are set once, at creation.
CHANGEABLE_FIELDS = frozenset({"name", "description", "status"})


class ProjectService(Service[Project]):
    repository_type = ProjectRepository
    policy = projects_policy
    sortable_fields = frozenset({"created_at", "updated_at", "name", "status"})
    search_fields = frozenset({"name"})

    def to_model_on_create(self, data: Any) -> Any:
        """Owned by the request's active organization (app admins may name another), created by
        the actor."""
        actor = self.actor
        ensure_can_write_in_organization(actor)
        organization_id = data.get("organization_id") or actor.organization_id
        if organization_id != actor.organization_id and not actor.is_admin:
            raise PermissionDeniedError("only app admins choose the organization of a project")
        if organization_id is None or (organization_id != actor.organization_id and not self._is_live(organization_id)):
            raise DomainValidationError(
                "the project needs an organization",
                [{"key": "organization_id", "message": "required: a live organization's id"}],
            )
        system = actor.method is AuthMethod.SYSTEM
        created_by = data.get("created_by", actor.user_id) if system else actor.user_id
        return {**data, "organization_id": organization_id, "created_by": created_by}

    def to_model_on_update(self, data: Any) -> Any:
        """Every update path passes here: organization admins (and app admins) change name,
        description and status; only the system moves a project or changes its author."""
        ensure_can_write_in_organization(self.actor)
        reserved = set(data) - CHANGEABLE_FIELDS
        if reserved and self.actor.method is not AuthMethod.SYSTEM:
            raise PermissionDeniedError(f"{', '.join(sorted(reserved))} cannot change")
        return data

    def change(self, project_id: UUID, changes: Any) -> Project:
        return self.apply_changes(self.get(project_id), changes)  # another tenant's: 404 before 403

    def remove(self, project_id: UUID) -> None:
        project = self.get(project_id)
        ensure_can_write_in_organization(self.actor)
        self.session.delete(project)
        self.session.flush()

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        ensure_can_write_in_organization(self.actor)
        return super().delete(*args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        ensure_can_write_in_organization(self.actor)
        return super().delete_many(*args, **kwargs)

    def delete_where(self, *args: Any, **kwargs: Any) -> Any:
        ensure_can_write_in_organization(self.actor)
        return super().delete_where(*args, **kwargs)

    def archive_stale_drafts(self, updated_before: datetime, limit: int) -> int:
        """Archive up to `limit` draft projects not updated since then, among the rows the actor may
        change (the maintenance flow: every live organization's). Call again until it returns less
        than `limit`."""
        ensure_can_write_in_organization(self.actor)
        stale = (
            select(col(Project.id))
            .where(*self.row_filters(), *self._stale(updated_before))
            .order_by(col(Project.id))
            .limit(limit)
        )
        statement = (
            update(Project)
            .where(col(Project.id).in_(stale.scalar_subquery()))
            .values(status=ProjectStatus.ARCHIVED)
            .execution_options(synchronize_session=False)
        )
        return self.affected_rows(statement)

    @staticmethod
    def _stale(updated_before: datetime) -> list[ColumnElement[bool]]:
        return [col(Project.status) == ProjectStatus.DRAFT, col(Project.updated_at) < updated_before]

    def _is_live(self, organization_id: UUID) -> bool:
        organization = self.session.get(Organization, organization_id)
        return organization is not None and organization.deleted_at is None
