"""What crosses the projects domain's boundary: create/update inputs and the public view."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import field_validator
from sqlmodel import Field

from app.domains.base.schemas import InputSchema
from app.domains.projects.models import ProjectBase, ProjectStatus


class ProjectCreate(ProjectBase, InputSchema):
    organization_id: UUID | None = Field(
        default=None,
        description="App admins only: the organization that owns it (default: the request's active organization)",
    )


class ProjectUpdate(InputSchema):
    """Only the fields present in the request change; `null` is refused where a value is required."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    status: ProjectStatus | None = None

    @field_validator("name", "status")
    @classmethod
    def _required_fields_are_not_null(cls, value: Any) -> Any:
        """A field validator, so the error names the field (an absent field is not validated)."""
        if value is None:
            raise ValueError("cannot be null")
        return value


class ProjectPublic(ProjectBase):
    id: UUID
    organization_id: UUID
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
