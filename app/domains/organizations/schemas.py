"""What crosses the organizations domain's boundary: public views (Clerk writes organizations)."""

from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel

from app.domains.organizations.models import OrganizationBase


class OrganizationPublic(OrganizationBase):
    id: UUID
    clerk_id: str
    created_at: datetime
    updated_at: datetime


class MemberPublic(SQLModel):
    """A member of an organization: the membership, and the user's public profile."""

    id: UUID = Field(description="The membership's id")
    organization_id: UUID
    user_id: UUID
    role: str = Field(description="admin, member, or a custom role as Clerk names it (it grants what a member gets)")
    first_name: str | None
    last_name: str | None
    image_url: str | None
    created_at: datetime
