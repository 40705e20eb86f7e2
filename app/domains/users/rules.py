"""Rules of the users domain: who sees which rows, who may change what."""

from collections.abc import Iterable

from app.domains.base.actors import Actor
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.policies import OwnedBy

# A member sees and changes only itself; an admin sees everyone.
users_policy = OwnedBy("id")
# A member sees only its own keys; an admin sees every key.
api_keys_policy = OwnedBy("user_id")

ADMIN_ONLY_USER_FIELDS = frozenset({"role", "is_active"})


def ensure_can_change_user(actor: Actor, fields: Iterable[str]) -> None:
    """Members may edit their profile, never their own role or active flag."""
    reserved = ADMIN_ONLY_USER_FIELDS.intersection(fields)
    if reserved and not actor.is_admin:
        raise PermissionDeniedError(f"only admins may change {', '.join(sorted(reserved))}")


def ensure_can_grant(actor: Actor, scopes: Iterable[str]) -> None:
    """A key never carries more than the credential that created it."""
    missing = set(scopes) - actor.permissions
    if missing:
        raise PermissionDeniedError(f"cannot grant permissions you do not hold: {', '.join(sorted(missing))}")
