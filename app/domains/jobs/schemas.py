"""What crosses the jobs domain's boundary: the public view of a job (never its result or lease)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Field, SQLModel

from app.domains.jobs.models import JobStatus


class JobPublic(SQLModel):
    id: UUID
    kind: str
    parameters: dict[str, Any]
    status: JobStatus = Field(description="queued, running, succeeded or failed")
    attempts: int = Field(description="How many times a worker has started it")
    requested_by: UUID | None
    organization_id: UUID | None = Field(description="The organization it belongs to; null: a personal job")
    request_id: str | None = Field(description="The X-Request-ID of the request that started it")
    run_after: datetime = Field(description="While queued: not started before then (a retry waits out its backoff)")
    started_at: datetime | None = Field(description="When its latest attempt started")
    finished_at: datetime | None
    failure_reason: str | None = Field(
        description="Why it failed, or why its latest attempt failed while it waits to retry"
    )
    created_at: datetime
    updated_at: datetime
