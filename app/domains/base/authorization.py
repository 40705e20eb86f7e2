"""Who is acting, and which rows they may see. Written once, applied by services and guards alike."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import ColumnElement, false

from app.domains.base.exceptions import PermissionDeniedError


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class AuthMethod(StrEnum):
    API_KEY = "api_key"
    CLERK_SESSION = "clerk_session"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class AuthorizationContext:
    """The actor of one operation, whatever adapter or credential it came through."""

    user_id: UUID | None
    role: Role
    scopes: frozenset[str]
    method: AuthMethod
    api_key_id: UUID | None = field(default=None)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @classmethod
    def system(cls, scopes: frozenset[str]) -> "AuthorizationContext":
        """The actor of flows and CLI commands: an admin that is not a user."""
        return cls(user_id=None, role=Role.ADMIN, scopes=scopes, method=AuthMethod.SYSTEM)


def require_scope(context: AuthorizationContext, scope: str) -> None:
    if scope not in context.scopes:
        raise PermissionDeniedError(f"missing scope {scope!r}", required_scope=scope)


def require_admin(context: AuthorizationContext) -> None:
    if not context.is_admin:
        raise PermissionDeniedError("this operation is reserved to admins")


class ScopeStrategy(Protocol):
    """Turns an actor into the filter that limits the rows it may touch (None: no limit)."""

    def row_filter(self, context: AuthorizationContext, model: type[Any]) -> ColumnElement[bool] | None: ...


@dataclass(frozen=True, slots=True)
class OwnedByActor:
    """Admins see every row; anyone else only the rows whose `owner_field` is their user id."""

    owner_field: str

    def row_filter(self, context: AuthorizationContext, model: type[Any]) -> ColumnElement[bool] | None:
        if context.is_admin:
            return None
        owner_column = getattr(model, self.owner_field)
        if context.user_id is None:
            return false()
        return owner_column == context.user_id


@dataclass(frozen=True, slots=True)
class AdminsOnly:
    """Admins see every row; no one else sees any."""

    def row_filter(self, context: AuthorizationContext, model: type[Any]) -> ColumnElement[bool] | None:
        return None if context.is_admin else false()
