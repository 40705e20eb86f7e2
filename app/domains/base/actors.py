"""Who is acting: one `Actor` per operation, whatever adapter or credential it came through."""

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.permissions import permissions


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


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

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

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
