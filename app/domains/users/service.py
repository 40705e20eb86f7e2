"""Use cases of the users domain, shared by the API, the CLI and the flows."""

import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NoReturn
from uuid import UUID

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.domains.base.actors import Actor, AuthMethod, Role, require_admin
from app.domains.base.exceptions import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
    PermissionDeniedError,
    TooManyAttemptsError,
)
from app.domains.base.models import utcnow
from app.domains.base.permissions import permissions
from app.domains.base.service import Service
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.organizations.models import Membership, Organization
from app.domains.users.api_keys import FailedAttempts, KeyHasher, api_key_prefix, generate_api_key, secret_check
from app.domains.users.emails import InvalidEmailError, normalized_email
from app.domains.users.exceptions import InvalidAPIKeyError
from app.domains.users.models import APIKey, User
from app.domains.users.repository import APIKeyRepository, UserRepository
from app.domains.users.rules import (
    api_keys_policy,
    ensure_can_change_key,
    ensure_can_change_user,
    ensure_can_grant,
    is_usable,
    users_policy,
)
from app.domains.users.schemas import APIKeyCreate, UserCreate, UserUpdate

# last_used_at is refreshed at most this often per key, so authentication rarely writes.
LAST_USED_PRECISION = timedelta(minutes=1)
# Built once: constructing a statement costs more CPU than running it (~100 µs per request).
# A key bound to an organization comes with that organization and its user's live membership there.
_KEY_WITH_USER = (
    select(APIKey, User, col(Organization.deleted_at), col(Membership.role))
    .join(User, col(APIKey.user_id) == col(User.id))
    .outerjoin(Organization, col(Organization.id) == col(APIKey.organization_id))
    .outerjoin(
        Membership,
        and_(
            col(Membership.organization_id) == col(APIKey.organization_id),
            col(Membership.user_id) == col(APIKey.user_id),
            col(Membership.deleted_at).is_(None),
        ),
    )
    .where(col(APIKey.prefix) == bindparam("prefix"))
)


def _normalized(data: Any) -> Any:
    """Every write of a user's e-mail passes here (create, update, upsert, the webhook's and the
    reconciliation's changes): stored as `normalized_email` says, or refused."""
    if isinstance(data, dict) and data.get("email") is not None:
        try:
            if not isinstance(data["email"], str):
                raise InvalidEmailError("value is not a valid email address: not a string")
            data = {**data, "email": str(normalized_email(data["email"]))}  # stored as a plain str
        except InvalidEmailError as error:
            raise DomainValidationError(f"email: {error}", [{"key": "email", "message": str(error)}]) from None
    return data


def _refuse(attempts: FailedAttempts, client: str | None, prefix: str) -> NoReturn:
    if (wait := attempts.failed(client, prefix)) is not None:
        raise TooManyAttemptsError(wait)
    raise InvalidAPIKeyError("invalid API key")


def keep_actor_row(session: Session, user: User) -> None:
    """Hold the authenticated user for the session's life: its identity map keeps rows only weakly,
    and `UserService.current()` answers from it without a query."""
    session.info["actor_user"] = user


class UserService(Service[User]):
    repository_type = UserRepository
    policy = users_policy
    sortable_fields = frozenset({"created_at", "updated_at", "email", "first_name", "last_name"})
    search_fields = frozenset({"email", "first_name", "last_name"})
    conflict_messages = {  # noqa: RUF012
        "email": "a user with this e-mail already exists",
        "clerk_id": "a user with this Clerk id already exists",
    }

    def default_filters(self) -> list[ColumnElement[bool]]:
        return [col(User.deleted_at).is_(None)]

    def to_model_on_create(self, data: Any) -> Any:
        require_admin(self.actor)  # whatever the path: create_user, create, upsert...
        return _normalized(data)

    def to_model_on_update(self, data: Any) -> Any:
        """Every update path (change, update, upsert, get_and_update...) passes here."""
        ensure_can_change_user(self.actor, data)
        return _normalized(data)

    def _matching(self, match_fields: str | Iterable[str], values: Mapping[str, Any]) -> User | None:
        """upsert, get_or_upsert... by e-mail look the address up as it is stored."""
        return super()._matching(match_fields, _normalized(dict(values)))

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        self._only_the_system_deletes()
        return super().delete(*args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        self._only_the_system_deletes()
        return super().delete_many(*args, **kwargs)

    def delete_where(self, *args: Any, **kwargs: Any) -> Any:
        self._only_the_system_deletes()
        return super().delete_where(*args, **kwargs)

    def _only_the_system_deletes(self) -> None:
        """A user is removed with `remove` (a tombstone: Clerk's late events must find it); rows go
        only when the maintenance flow purges old tombstones."""
        if self.actor.method is not AuthMethod.SYSTEM:
            raise PermissionDeniedError("users are removed with a tombstone, not deleted")

    def current(self) -> User:
        """The actor's own user: the row authentication loaded into this session (`keep_actor_row`),
        else from the session's identity map or by its key."""
        user_id = self.actor.user_id
        kept = self.session.info.get("actor_user")
        user: User | None
        if isinstance(kept, User) and user_id is not None and kept.id == user_id:
            user = kept
        else:
            user = self.session.get(User, user_id) if user_id else None
        if user is None or not is_usable(user):
            raise NotFoundError("the actor is not a user")
        return user

    def create_user(self, data: UserCreate) -> User:
        require_admin(self.actor)
        return self.create(data)

    def change(self, user_id: UUID, changes: UserUpdate) -> User:
        user = self.current() if user_id == self.actor.user_id else self.get(user_id)
        ensure_can_change_user(self.actor, changes.model_fields_set)  # before the admin rules below
        demoted = changes.role is not None and changes.role is not Role.ADMIN
        if (demoted or changes.is_active is False) and user.role == Role.ADMIN:
            self._keep_an_admin(user, "deactivate" if changes.is_active is False else "demote")
        return self.apply_changes(user, changes)

    def remove(self, user_id: UUID) -> None:
        """Soft delete (admins): see `tombstone`."""
        user = self.get(user_id)
        require_admin(self.actor)
        if user.role == Role.ADMIN:
            self._keep_an_admin(user, "delete")
        self.tombstone(user)

    def _keep_an_admin(self, admin: User, action: str) -> None:
        """An admin cannot deactivate or delete itself, and the last active admin stays one.

        The active admins are locked (PostgreSQL) while counting, so two admins demoting each
        other at once cannot both succeed.
        """
        if action != "demote" and admin.id == self.actor.user_id:
            raise ConflictError(f"an admin cannot {action} itself")
        active_admins = select(col(User.id)).where(
            *self.default_filters(), col(User.role) == Role.ADMIN, col(User.is_active)
        )
        others = [user_id for user_id in self.session.scalars(active_admins.with_for_update()) if user_id != admin.id]
        if admin.is_active and not others:
            raise ConflictError(f"cannot {action} the last active admin")

    def purge_tombstones(self, deleted_before: datetime, limit: int) -> tuple[int, int]:
        """Delete up to `limit` users tombstoned before then, and their keys: (users, keys)."""
        require_admin(self.actor)
        tombstoned = col(User.deleted_at) < deleted_before
        batch = list(self.session.scalars(select(col(User.id)).where(tombstoned).order_by(col(User.id)).limit(limit)))
        if not batch:
            return 0, 0
        keys = self.affected_rows(delete(APIKey).where(col(APIKey.user_id).in_(batch)))
        users = self.affected_rows(delete(User).where(col(User.id).in_(batch)))
        return users, keys

    def report(self, since: datetime) -> dict[str, int]:
        """Active users by role, and how many were created since then."""
        by_role = self.session.execute(
            select(col(User.role), func.count())
            .where(*self.row_filters(), col(User.is_active))
            .group_by(col(User.role))
        )
        counts = {f"active_{role}s": count for role, count in by_role}
        counts["new"] = self.count(col(User.created_at) >= since)
        return counts

    def tombstone(self, user: User) -> User:
        """Keep the row (and its id) but no personal data, and revoke its keys."""
        now = utcnow()
        self.session.execute(
            update(APIKey)
            .where(col(APIKey.user_id) == user.id, col(APIKey.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        # What stays is the same whatever happened before: the ids, and the fact of the deletion.
        personal_data = {"email": None, "first_name": None, "last_name": None, "image_url": None}
        sync_state = {"clerk_updated_at": None}
        return self.apply_changes(user, {**personal_data, **sync_state, "is_active": False, "deleted_at": now})


class APIKeyService(Service[APIKey]):
    repository_type = APIKeyRepository
    policy = api_keys_policy
    sortable_fields = frozenset({"created_at", "name", "expires_at", "last_used_at"})
    search_fields = frozenset({"name", "prefix"})

    def __init__(
        self, uow: UnitOfWork, actor: Actor | None = None, *, hasher: KeyHasher, attempts: FailedAttempts
    ) -> None:
        """`hasher` and `attempts` are the process's (the bootstrap's factory passes them)."""
        super().__init__(uow, actor)
        self.hasher = hasher
        self.attempts = attempts

    def to_model_on_update(self, data: Any) -> Any:
        ensure_can_change_key(self.actor, data)
        return data

    def issue(self, data: APIKeyCreate) -> tuple[APIKey, str]:
        """Create a key owned by the actor; returns the row and the full key (shown once)."""
        values, key = self.new_key(data)
        return self.create({**values, "key_hash": self.hasher.hash(key)}), key

    def new_key(self, data: APIKeyCreate) -> tuple[dict[str, Any], str]:
        """The checked values of a new key owned by the actor (all but its slow hash) and the full key;
        nothing is stored. `issue` is the way to create one."""
        actor = self.actor
        if actor.user_id is None:
            raise PermissionDeniedError("an API key must belong to a user")
        scopes = sorted(set(data.scopes) if data.scopes is not None else actor.permissions)
        ensure_can_grant(actor, scopes)
        if data.expires_at is not None and data.expires_at <= utcnow():
            raise DomainValidationError(
                "the key would already be expired", [{"key": "expires_at", "message": "must be in the future"}]
            )
        expires_at = self._bounded_by_parent(data.expires_at)
        generated = generate_api_key()
        values = {
            "user_id": actor.user_id,
            "parent_id": actor.api_key_id,
            "organization_id": actor.organization_id,  # bound to the active organization, if any
            "name": data.name,
            "prefix": generated.prefix,
            "secret_check": secret_check(generated.key),
            "scopes": scopes,
            "expires_at": expires_at,
        }
        return values, generated.key

    def _verify_secret(self, raw_key: str, key: APIKey, client: str | None) -> None:
        """argon2 (~100 ms) runs only for a secret that passes the key's stored check, so a wrong
        secret costs a SHA-256, and a valid key is checked whatever others' failures: limits only
        turn the refusal of a wrong secret from 401 into 429."""
        check = secret_check(raw_key)
        if key.secret_check is None:  # a key from before checks: argon2 is all there is, so limit first
            if (wait := self.attempts.retry_after(client, key.prefix)) is not None:
                raise TooManyAttemptsError(wait)
        elif not hmac.compare_digest(check, key.secret_check):
            self.hasher.learn_check(key.prefix, key.secret_check)  # the next wrong ones cost no query
            _refuse(self.attempts, client, key.prefix)
        if not self.hasher.verify(raw_key, key.key_hash):
            _refuse(self.attempts, client, key.prefix)
        if key.secret_check is None:
            key.secret_check = check  # written with the unit of work's commit

    def _bounded_by_parent(self, expires_at: datetime | None) -> datetime | None:
        """A key created with a key expires no later than it (by default, with it)."""
        if self.actor.api_key_id is None:
            return expires_at  # a Clerk session or the CLI: the user is present
        parent = self.session.get(APIKey, self.actor.api_key_id)
        if parent is None or parent.expires_at is None:
            return expires_at
        if expires_at is None:
            return parent.expires_at
        if expires_at > parent.expires_at:
            raise DomainValidationError(
                "a key cannot outlive the key that creates it",
                [{"key": "expires_at", "message": f"at most {parent.expires_at.isoformat()}"}],
            )
        return expires_at

    def revoke(self, key_id: UUID) -> APIKey:
        """Revoke the key and every key created with it, down the whole line."""
        key = self.get(key_id)
        if key.revoked_at is not None:
            return key
        now = utcnow()
        line = select(col(APIKey.id)).where(col(APIKey.parent_id) == key.id).cte("descendants", recursive=True)
        line = line.union_all(select(col(APIKey.id)).where(col(APIKey.parent_id) == line.c.id))
        self.session.execute(
            update(APIKey)
            .where(col(APIKey.id).in_(select(line.c.id)), col(APIKey.revoked_at).is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        return self.apply_changes(key, {"revoked_at": now})

    def revoke_expired(self, now: datetime, limit: int) -> int:
        """Revoke up to `limit` keys past their expiry (revoked keys no longer match: call it
        again until it returns less than `limit`)."""
        require_admin(self.actor)
        expired = (
            select(col(APIKey.id))
            .where(col(APIKey.revoked_at).is_(None), col(APIKey.expires_at) <= now)
            .order_by(col(APIKey.id))
            .limit(limit)
        )
        statement = update(APIKey).where(col(APIKey.id).in_(expired.scalar_subquery())).values(revoked_at=now)
        return self.affected_rows(statement)

    def authenticate(self, raw_key: str, client: str | None = None) -> Actor:
        """The actor behind a key: one query (key and user), argon2 only the first time a process
        sees the key, and nothing hashed for a key that could not be used anyway."""
        prefix = api_key_prefix(raw_key)
        if prefix is None:
            raise InvalidAPIKeyError("malformed API key")
        if self.hasher.refuses_at_once(prefix, secret_check(raw_key)):  # a flood on a known prefix
            _refuse(self.attempts, client, prefix)
        found = self.session.execute(_KEY_WITH_USER, {"prefix": prefix}).one_or_none()
        if found is None:
            raise InvalidAPIKeyError("invalid API key")
        key, user, organization_deleted_at, organization_role = found
        now = utcnow()
        if key.revoked_at is not None:
            raise InvalidAPIKeyError("API key revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise InvalidAPIKeyError("API key expired")
        if not is_usable(user):
            raise InvalidAPIKeyError("the key's user is inactive")
        if key.organization_id is not None:
            if organization_deleted_at is not None:
                raise InvalidAPIKeyError("the key's organization was deleted")
            if organization_role is None and user.role != Role.ADMIN:
                raise InvalidAPIKeyError("the key's user is no longer a member of the key's organization")
        if not self.hasher.is_remembered(raw_key, key.key_hash):
            self._verify_secret(raw_key, key, client)
        keep_actor_row(self.session, user)
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION:
            key.last_used_at = now  # written with the unit of work's commit
        return Actor(
            user_id=user.id,
            role=Role(user.role),
            permissions=frozenset(key.scopes) & permissions.all(),
            method=AuthMethod.API_KEY,
            api_key_id=key.id,
            organization_id=key.organization_id,
            organization_role=organization_role,
        )
