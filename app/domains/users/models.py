"""Tables of the users domain. Table models do not validate: write through the schemas."""

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.domains.base.actors import Role
from app.domains.base.models import TableBase


class UserBase(SQLModel):
    first_name: str | None = Field(default=None, max_length=100, index=True)
    last_name: str | None = Field(default=None, max_length=100, index=True)
    image_url: str | None = Field(default=None, max_length=2048)


class User(UserBase, TableBase, table=True):
    __tablename__ = "users"

    # Nullable: phone and username sign-ups have no e-mail, and a tombstone keeps none.
    # Stored lower-cased, so the unique index is case-insensitive.
    email: str | None = Field(default=None, max_length=320, unique=True, index=True)
    clerk_id: str | None = Field(default=None, max_length=64, unique=True, index=True)
    # Clerk's own updated_at of the last webhook applied: older deliveries are ignored.
    clerk_updated_at: datetime | None = None
    role: Role = Field(default=Role.MEMBER, sa_type=sa.String(16))
    is_active: bool = True
    deleted_at: datetime | None = None


class APIKeyBase(SQLModel):
    name: str = Field(min_length=1, max_length=100, index=True)


class APIKey(APIKeyBase, TableBase, table=True):
    __tablename__ = "api_keys"

    user_id: UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # The key that created this one (None: created from a Clerk session or the CLI). A child never
    # outlives its parent, and revoking a key revokes every key it created.
    parent_id: UUID | None = Field(default=None, foreign_key="api_keys.id", ondelete="CASCADE", index=True)
    # The organization the key acts in (None: a personal key, which reaches no organization's data).
    # It acts there with the role its user holds at the time of use: leaving cuts it off.
    organization_id: UUID | None = Field(default=None, foreign_key="organizations.id", ondelete="CASCADE", index=True)
    prefix: str = Field(max_length=32, unique=True, index=True)
    key_hash: str = Field(max_length=255)
    # `secret_check(key)`: wrong secrets are refused without argon2. None on keys made before it
    # existed, until their first successful use fills it in.
    secret_check: str | None = Field(default=None, max_length=8)
    scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    expires_at: datetime | None = Field(default=None, index=True)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = Field(default=None, index=True)
