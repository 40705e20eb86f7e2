"""Who is acting: one `Actor` per operation, whatever adapter or credential it came through."""

from dataclasses import dataclass, field, replace
from enum import StrEnum
from uuid import UUID

from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.permissions import permissions


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


# The role that lets a member of an organization change its data; any other (`member`, a custom
# role) reads. Roles as Clerk names them are normalised by the organizations domain.
ORGANIZATION_ADMIN = "admin"


class AuthMethod(StrEnum):
    API_KEY = "api_key"
    CLERK_SESSION = "clerk_session"
    SYSTEM = "system"  # flows, the CLI, verified webhooks
    ANONYMOUS = "anonymous"  # public routes


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: UUID | None
    role: Role
    permissions: frozenset[str]
    method: AuthMethod
    api_key_id: UUID | None = field(default=None)
    # The request's tenant: the session's active organization, or the one the API key is bound to,
    # and the role the user holds there now (None: no active organization, sees no tenant's data).
    organization_id: UUID | None = field(default=None)
    organization_role: str | None = field(default=None)

    @property
    def is_admin(self) -> bool:
        """An admin of the app: every organization's data, with or without an active one."""
        return self.role is Role.ADMIN

    @property
    def is_organization_admin(self) -> bool:
        """An admin of the active organization."""
        return self.organization_id is not None and self.organization_role == ORGANIZATION_ADMIN

    def in_organization(self, organization_id: UUID, role: str | None) -> "Actor":
        """The same actor with this active organization and role in it."""
        return replace(self, organization_id=organization_id, organization_role=role)

    @classmethod
    def system(cls) -> "Actor":
        """Flows, the CLI and verified webhooks: an admin with every permission, and no user."""
        return cls(user_id=None, role=Role.ADMIN, permissions=permissions.all(), method=AuthMethod.SYSTEM)

    @classmethod
    def on_behalf_of(cls, user_id: UUID, role: Role) -> "Actor":
        """The system (the CLI, a flow) acting as a user: that user's id and role, with every
        permission. What it creates is the user's, and the row policy is the user's."""
        return cls(user_id=user_id, role=role, permissions=permissions.all(), method=AuthMethod.SYSTEM)

    @classmethod
    def anonymous(cls) -> "Actor":
        """The actor of a public route: no user, no permission, no row."""
        return cls(user_id=None, role=Role.MEMBER, permissions=frozenset(), method=AuthMethod.ANONYMOUS)


def require_permission(actor: Actor, permission: str) -> None:
    if permission not in actor.permissions:
        raise PermissionDeniedError(f"missing permission {permission}", required_permission=str(permission))


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDeniedError("this operation is reserved to admins")
