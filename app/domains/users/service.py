"""Use cases of the users domain, shared by the API, the CLI and the flows."""

from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domains.base.authorization import AuthMethod, AuthorizationContext, Role, require_admin
from app.domains.base.exceptions import DomainValidationError, PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.base.service import Service
from app.domains.users.authorization import (
    ALL_SCOPES,
    api_keys_scope,
    ensure_can_change_user,
    ensure_can_grant,
    users_scope,
)
from app.domains.users.exceptions import InvalidAPIKeyError
from app.domains.users.models import APIKey, User
from app.domains.users.repository import APIKeyRepository, UserRepository
from app.domains.users.schemas import APIKeyCreate, UserCreate, UserUpdate
from app.infrastructure.security import APIKeyHasher, api_key_prefix, generate_api_key

# last_used_at is refreshed at most this often per key, so authentication rarely writes.
LAST_USED_PRECISION = timedelta(minutes=1)


def _normalized(data: Any) -> Any:
    """E-mails are stored lower-cased: the unique index is then case-insensitive everywhere."""
    if isinstance(data, BaseModel):
        data = data.model_dump(exclude_unset=True)
    if isinstance(data, dict) and isinstance(data.get("email"), str):
        data = {**data, "email": data["email"].strip().lower()}
    return data


class UserService(Service[User]):
    repository_type = UserRepository
    scope_strategy = users_scope
    sortable_fields = frozenset({"created_at", "updated_at", "email", "first_name", "last_name"})
    search_fields = frozenset({"email", "first_name", "last_name"})
    conflict_messages = {  # noqa: RUF012
        "email": "a user with this e-mail already exists",
        "clerk_id": "a user with this Clerk id already exists",
    }

    def default_filters(self) -> list[Any]:
        return [User.deleted_at.is_(None)]

    def to_model_on_create(self, data: Any) -> Any:
        return _normalized(data)

    def to_model_on_update(self, data: Any) -> Any:
        return _normalized(data)

    def create_user(self, context: AuthorizationContext, data: UserCreate) -> User:
        require_admin(context)
        return self.create(data)

    def update_visible(self, context: AuthorizationContext, user_id: UUID, changes: UserUpdate) -> User:
        user = self.get_visible(context, user_id)
        ensure_can_change_user(context, changes.model_fields_set)
        return self.apply_changes(user, changes)

    def delete_visible(self, context: AuthorizationContext, user_id: UUID) -> None:
        user = self.get_visible(context, user_id)
        require_admin(context)
        self.tombstone(user)

    def tombstone(self, user: User) -> User:
        """Soft delete: keep the row (and its id) but no personal data, and revoke its keys."""
        now = utcnow()
        self.session.execute(
            update(APIKey).where(APIKey.user_id == user.id, APIKey.revoked_at.is_(None)).values(revoked_at=now)
        )
        # What stays is the same whatever happened before: the ids, and the fact of the deletion.
        personal_data = {"email": None, "first_name": None, "last_name": None, "image_url": None}
        sync_state = {"clerk_updated_at": None}
        return self.apply_changes(user, {**personal_data, **sync_state, "is_active": False, "deleted_at": now})


class APIKeyService(Service[APIKey]):
    repository_type = APIKeyRepository
    scope_strategy = api_keys_scope
    sortable_fields = frozenset({"created_at", "name", "expires_at", "last_used_at"})
    search_fields = frozenset({"name", "prefix"})

    def __init__(self, session: Session, hasher: APIKeyHasher, **kwargs: Any) -> None:
        super().__init__(session, **kwargs)
        self.hasher = hasher

    def issue(self, context: AuthorizationContext, data: APIKeyCreate) -> tuple[APIKey, str]:
        """Create a key owned by the actor; returns the row and the full key (shown once)."""
        if context.user_id is None:
            raise PermissionDeniedError("an API key must belong to a user")
        scopes = sorted(set(data.scopes) if data.scopes is not None else context.scopes & ALL_SCOPES)
        ensure_can_grant(context, scopes)
        if data.expires_at is not None and data.expires_at <= utcnow():
            raise DomainValidationError(
                "the key would already be expired", [{"key": "expires_at", "message": "must be in the future"}]
            )
        generated = generate_api_key()
        row = self.create(
            {
                "user_id": context.user_id,
                "name": data.name,
                "prefix": generated.prefix,
                "key_hash": self.hasher.hash(generated.key),
                "scopes": scopes,
                "expires_at": data.expires_at,
            }
        )
        return row, generated.key

    def revoke_visible(self, context: AuthorizationContext, key_id: UUID) -> APIKey:
        key = self.get_visible(context, key_id)
        if key.revoked_at is not None:
            return key
        return self.apply_changes(key, {"revoked_at": utcnow()})

    def authenticate(self, raw_key: str) -> AuthorizationContext:
        """The actor behind a key. One query per call; argon2 only the first time a process sees it."""
        prefix = api_key_prefix(raw_key)
        if prefix is None:
            raise InvalidAPIKeyError("malformed API key")
        found = self.session.execute(
            select(APIKey, User).join(User, APIKey.user_id == User.id).where(APIKey.prefix == prefix)
        ).one_or_none()
        if found is None or not self.hasher.verify(raw_key, found.APIKey.key_hash):
            raise InvalidAPIKeyError("invalid API key")
        key, user = found
        now = utcnow()
        if key.revoked_at is not None:
            raise InvalidAPIKeyError("API key revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise InvalidAPIKeyError("API key expired")
        if user.deleted_at is not None or not user.is_active:
            raise InvalidAPIKeyError("the key's user is inactive")
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION:
            self.session.execute(update(APIKey).where(APIKey.id == key.id).values(last_used_at=now))
            self.commit()
        return AuthorizationContext(
            user_id=user.id,
            role=Role(user.role),
            scopes=frozenset(key.scopes) & ALL_SCOPES,
            method=AuthMethod.API_KEY,
            api_key_id=key.id,
        )
