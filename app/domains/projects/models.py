"""Tables of the projects domain. Table models do not validate: write through the schemas."""

from enum import StrEnum
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.domains.base.models import TableBase


class ProjectStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class ProjectBase(SQLModel):
    name: str = Field(min_length=1, max_length=200, index=True)
    description: str | None = Field(default=None, max_length=2000)
    status: ProjectStatus = Field(default=ProjectStatus.DRAFT, sa_type=sa.String(16), index=True)


class Project(ProjectBase, TableBase, table=True):
    __tablename__ = "projects"
    # A tenant's page is read from this index, however many organizations share the table.
    __table_args__ = (sa.Index("ix_projects_organization_id_created_at", "organization_id", "created_at"),)

    organization_id: UUID = Field(foreign_key="organizations.id", ondelete="CASCADE")
    # Who created it (None once that user is purged).
    created_by: UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL", index=True)
