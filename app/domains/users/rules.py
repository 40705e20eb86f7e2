"""Rules of the users domain: who sees which rows, who may change what."""

from collections.abc import Iterable

from app.domains.base.actors import Actor, AuthMethod
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.policies import OwnedBy
from app.domains.users.models import User

# A member sees and changes only itself; an admin sees everyone.
users_policy = OwnedBy("id")
# A member sees only its own keys; an admin sees every key.
api_keys_policy = OwnedBy("user_id")

PROFILE_FIELDS = frozenset({"email", "first_name", "last_name", "image_url"})
# What an owner may change on its own key: its name, and revoke it (never un-revoke).
KEY_OWNER_FIELDS = frozenset({"name", "revoked_at"})


def is_usable(user: User) -> bool:
    """A user that may act: not deleted, not deactivated (its keys and sessions are refused)."""
    return user.deleted_at is None and user.is_active


def ensure_can_change_user(actor: Actor, fields: Iterable[str]) -> None:
    """Members may edit their profile, nothing else (role, active flag, Clerk link, deletion)."""
    reserved = set(fields) - PROFILE_FIELDS
    if reserved and not actor.is_admin:
        raise PermissionDeniedError(f"only admins may change {', '.join(sorted(reserved))}")


def ensure_can_change_key(actor: Actor, changes: dict[str, object]) -> None:
    """A key's scopes, owner, parent and expiry are set when it is issued; only the system (flows,
    the CLI) changes them afterwards. Anyone who may see a key may rename or revoke it."""
    if actor.method is AuthMethod.SYSTEM:
        return
    reserved = set(changes) - KEY_OWNER_FIELDS
    if reserved:
        raise PermissionDeniedError(f"{', '.join(sorted(reserved))} cannot change once a key is issued")
    if "revoked_at" in changes and changes["revoked_at"] is None:
        raise PermissionDeniedError("a revoked key stays revoked")


def ensure_can_grant(actor: Actor, scopes: Iterable[str]) -> None:
    """A key never carries more than the credential that created it."""
    missing = set(scopes) - actor.permissions
    if missing:
        raise PermissionDeniedError(f"cannot grant permissions you do not hold: {', '.join(sorted(missing))}")
