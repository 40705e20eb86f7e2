"""Export kinds: a user's own data, and an organization's for its admins, as JSON documents.

Handlers run as the system and read only what belongs to the job's user or organization. They only
read, so running one twice (a job whose worker died) gives the same kind of document.
"""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.domains.base.actors import ORGANIZATION_ADMIN, Actor, Role
from app.domains.base.exceptions import DomainValidationError, NotFoundError, PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.base.schemas import to_public
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.jobs.kinds import job_kinds
from app.domains.jobs.models import Job
from app.domains.jobs.rules import ensure_can_export_organization
from app.domains.organizations.models import Membership, Organization
from app.domains.organizations.permissions import OrganizationPermission
from app.domains.organizations.schemas import MemberPublic, OrganizationPublic
from app.domains.organizations.service import OrganizationService, member_view
from app.domains.projects.models import Project
from app.domains.projects.permissions import ProjectPermission
from app.domains.projects.schemas import ProjectPublic
from app.domains.users.models import APIKey, User
from app.domains.users.permissions import UserPermission
from app.domains.users.rules import is_usable
from app.domains.users.schemas import APIKeyPublic, UserPublic

USER_EXPORT = "user_export"
ORGANIZATION_EXPORT = "organization_export"


def _json(schema: type[Any], row: object) -> dict[str, Any]:
    return to_public(schema, row).model_dump(mode="json")  # type: ignore[no-any-return]


def _no_parameters(parameters: Mapping[str, Any]) -> None:
    if parameters:
        raise DomainValidationError(
            "this job takes no parameters", [{"key": name, "message": "unknown parameter"} for name in parameters]
        )


def _live_memberships(
    session: Session, user_id: UUID, organization_id: UUID | None
) -> list[tuple[Membership, Organization]]:
    """The user's live memberships: in that organization only, when one is named."""
    only = [col(Organization.id) == organization_id] if organization_id is not None else []
    rows = session.execute(
        select(Membership, Organization)
        .join(Organization, col(Organization.id) == col(Membership.organization_id))
        .where(
            col(Membership.user_id) == user_id,
            col(Membership.deleted_at).is_(None),
            col(Organization.deleted_at).is_(None),
            *only,
        )
        .order_by(col(Organization.name), col(Organization.id))
    )
    return [(membership, organization) for membership, organization in rows]


# -- user_export ---------------------------------------------------------------------------------


def admit_user_export(_uow: UnitOfWork, actor: Actor, parameters: Mapping[str, Any]) -> UUID | None:
    """A user exports itself. Started with an active organization (a session's, a bound key's), the
    job is that organization's and holds only what the user has there: such a credential reaches no
    other organization's data, and the job is readable only while that organization is active. Its
    admins never see it (the kind is `personal`). App admins reach every organization: theirs is
    whole, and belongs to none."""
    _no_parameters(parameters)
    if actor.user_id is None:
        raise PermissionDeniedError("a user export is started by the user it exports")
    return None if actor.is_admin else actor.organization_id


def export_user(uow: UnitOfWork, job: Job) -> dict[str, Any]:
    """The user's profile, its API keys (metadata: never a hash), its live memberships, and the
    projects it created in the organizations it still belongs to (only the job's organization's,
    when it has one)."""
    session = uow.session
    user = session.get(User, job.requested_by) if job.requested_by is not None else None
    if user is None or not is_usable(user):
        raise NotFoundError("the user who asked for this export no longer exists")
    keys = session.scalars(
        select(APIKey).where(col(APIKey.user_id) == user.id).order_by(col(APIKey.created_at), col(APIKey.id))
    )
    memberships = _live_memberships(session, user.id, job.organization_id)
    organization_ids = [organization.id for _, organization in memberships]
    projects = session.scalars(
        select(Project)
        .where(col(Project.created_by) == user.id, col(Project.organization_id).in_(organization_ids))
        .order_by(col(Project.created_at), col(Project.id))
    )
    return {
        "kind": USER_EXPORT,
        "generated_at": utcnow().isoformat(),
        "user": _json(UserPublic, user),
        "api_keys": [_json(APIKeyPublic, key) for key in keys],
        "memberships": [
            {
                "organization_id": str(organization.id),
                "clerk_id": organization.clerk_id,
                "name": organization.name,
                "role": membership.role,
            }
            for membership, organization in memberships
        ],
        "projects": [_json(ProjectPublic, project) for project in projects],
    }


# -- organization_export -------------------------------------------------------------------------


def admit_organization_export(uow: UnitOfWork, actor: Actor, parameters: Mapping[str, Any]) -> UUID | None:
    """`{"organization_id": ...}`: a live organization the actor sees (404 otherwise), exported by
    one of its admins from inside it, or by an app admin. The job is that organization's."""
    if set(parameters) != {"organization_id"}:
        raise DomainValidationError(
            "an organization export takes its organization_id", [{"key": "organization_id", "message": "required"}]
        )
    try:
        organization_id = UUID(str(parameters["organization_id"]))
    except ValueError:
        raise DomainValidationError(
            "organization_id is not an id", [{"key": "organization_id", "message": "a UUID"}]
        ) from None
    ensure_can_export_organization(actor, organization_id)  # 404 outside it, before the query
    uow.service(OrganizationService, actor=actor).get(organization_id)  # 404 unless live and visible
    return organization_id


def export_organization(uow: UnitOfWork, job: Job) -> dict[str, Any]:
    """The organization, its live members (each with its public profile) and its projects. The
    user who asked must still be allowed to export it when it runs."""
    session = uow.session
    organization = session.get(Organization, job.organization_id) if job.organization_id is not None else None
    if organization is None or organization.deleted_at is not None:
        raise NotFoundError("the organization no longer exists")
    _ensure_still_allowed(session, job)
    members = session.execute(
        select(Membership, User)
        .join(User, col(User.id) == col(Membership.user_id))
        .where(
            col(Membership.organization_id) == organization.id,
            col(Membership.deleted_at).is_(None),
            col(User.deleted_at).is_(None),
        )
        .order_by(col(Membership.created_at), col(Membership.id))
    )
    projects = session.scalars(
        select(Project)
        .where(col(Project.organization_id) == organization.id)
        .order_by(col(Project.created_at), col(Project.id))
    )
    return {
        "kind": ORGANIZATION_EXPORT,
        "generated_at": utcnow().isoformat(),
        "organization": _json(OrganizationPublic, organization),
        "members": [_json(MemberPublic, member_view(membership, user)) for membership, user in members],
        "projects": [_json(ProjectPublic, project) for project in projects],
    }


def _ensure_still_allowed(session: Session, job: Job) -> None:
    """Asked by an app admin, or by an admin of the organization who still is one (a user demoted
    or gone since then gets no export). Asked by no user: the system."""
    if job.requested_by is None:
        return
    user = session.get(User, job.requested_by)
    if user is None or not is_usable(user):
        raise NotFoundError("the user who asked for this export no longer exists")
    if user.role == Role.ADMIN:
        return
    role = session.scalar(
        select(col(Membership.role)).where(
            col(Membership.organization_id) == job.organization_id,
            col(Membership.user_id) == user.id,
            col(Membership.deleted_at).is_(None),
        )
    )
    if role != ORGANIZATION_ADMIN:
        raise PermissionDeniedError("the user who asked is no longer an admin of the organization")


# What a credential must be allowed to read to start an export or read its document: an export
# never shows more than the routes would.
USER_DATA = (
    UserPermission.USERS_READ,
    UserPermission.API_KEYS_READ,
    OrganizationPermission.ORGANIZATIONS_READ,
    ProjectPermission.PROJECTS_READ,
)
ORGANIZATION_DATA = (OrganizationPermission.ORGANIZATIONS_READ, ProjectPermission.PROJECTS_READ)

job_kinds.register(USER_EXPORT, export_user, admit=admit_user_export, reads=USER_DATA, personal=True)
job_kinds.register(ORGANIZATION_EXPORT, export_organization, admit=admit_organization_export, reads=ORGANIZATION_DATA)
