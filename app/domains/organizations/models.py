"""Tables of the organizations domain: Clerk's organizations, and who is a member with which role."""

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.domains.base.models import TableBase


class OrganizationBase(SQLModel):
    name: str = Field(max_length=256, index=True)
    slug: str | None = Field(default=None, max_length=256, index=True)
    image_url: str | None = Field(default=None, max_length=2048)


class Organization(OrganizationBase, TableBase, table=True):
    __tablename__ = "organizations"

    clerk_id: str = Field(max_length=64, unique=True, index=True)
    # Clerk's own updated_at of the last change applied: older deliveries are ignored.
    clerk_updated_at: datetime | None = None
    # A tombstone: deleted in Clerk. Later events cannot bring it back; its projects are unreachable
    # until the maintenance flow purges it after the retention period.
    deleted_at: datetime | None = Field(default=None, index=True)


class Membership(TableBase, table=True):
    """One row per (organization, user): the latest Clerk membership of that pair, live or ended.

    Clerk gives a user who leaves and is invited back a new membership id. The row follows the
    membership created last (`clerk_created_at`), so events of an older one, delivered late, change
    nothing; within one membership, updates apply in `clerk_updated_at` order and its deletion is
    final (`deleted_at`).
    """

    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("organization_id", "user_id"),)

    organization_id: UUID = Field(foreign_key="organizations.id", ondelete="CASCADE", index=True)
    user_id: UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # `admin`, `member`, or a custom role kept as Clerk names it (it grants what a member gets).
    role: str = Field(max_length=64)
    clerk_id: str | None = Field(default=None, max_length=64, index=True)  # None: known from a session token only
    clerk_created_at: datetime | None = None
    clerk_updated_at: datetime | None = None
    deleted_at: datetime | None = None
