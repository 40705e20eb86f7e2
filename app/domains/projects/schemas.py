"""What crosses the projects domain's boundary: create/update inputs and the public view."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from sqlmodel import Field

from app.domains.base.schemas import NOT_NULL, InputSchema
from app.domains.projects.models import ProjectBase, ProjectStatus


class ProjectCreate(ProjectBase, InputSchema):
    organization_id: UUID | None = Field(
        default=None,
        description="App admins only: the organization that owns it (default: the request's active organization)",
    )


class ProjectUpdate(InputSchema):
    """Only the fields present in the request change; `null` is refused where a value is required."""

    name: Annotated[str | None, NOT_NULL] = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    status: Annotated[ProjectStatus | None, NOT_NULL] = None


class ProjectPublic(ProjectBase):
    id: UUID
    organization_id: UUID
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
