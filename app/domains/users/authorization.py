"""Rules of the users domain: scopes, what each actor may see and change."""

from collections.abc import Iterable
from enum import StrEnum

from app.domains.base.authorization import AuthorizationContext, OwnedByActor
from app.domains.base.exceptions import PermissionDeniedError


class Scope(StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    API_KEYS_READ = "api_keys:read"
    API_KEYS_WRITE = "api_keys:write"


ALL_SCOPES = frozenset(Scope)

# A member sees and changes only itself; an admin sees everyone.
users_scope = OwnedByActor("id")
# A member sees only its own keys; an admin sees every key.
api_keys_scope = OwnedByActor("user_id")

ADMIN_ONLY_USER_FIELDS = frozenset({"role", "is_active"})


def ensure_can_change_user(context: AuthorizationContext, fields: Iterable[str]) -> None:
    """Members may edit their profile, never their own role or active flag."""
    reserved = ADMIN_ONLY_USER_FIELDS.intersection(fields)
    if reserved and not context.is_admin:
        raise PermissionDeniedError(f"only admins may change {', '.join(sorted(reserved))}")


def ensure_can_grant(context: AuthorizationContext, scopes: Iterable[str]) -> None:
    """A key never carries more than the credential that created it."""
    missing = set(scopes) - context.scopes
    if missing:
        raise PermissionDeniedError(f"cannot grant scopes you do not hold: {', '.join(sorted(missing))}")
