"""Tables of the jobs domain. Table models do not validate: jobs are written by `JobService` only."""

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.orm import declared_attr, deferred
from sqlmodel import Field

from app.domains.base.models import TableBase, utcnow

# The longest `X-Request-ID` the API keeps (app/api/request_log.py), so a job names its request whole.
REQUEST_ID_MAX_LENGTH = 128
FAILURE_REASON_MAX_LENGTH = 2000
TRACE_CONTEXT_MAX_LENGTH = 128  # a traceparent is 55 characters; later versions may add fields


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for `run_after`, then for a worker
    RUNNING = "running"  # claimed: a worker holds its lease until `lease_expires_at`
    SUCCEEDED = "succeeded"  # `result` holds the document
    FAILED = "failed"  # `failure_reason` says why; never run again


class Job(TableBase, table=True):
    """One job: a kind, its parameters, who asked, and where it is in its life.

    A worker claims it with a lease (`lease_owner` until `lease_expires_at`); a lease that expires
    (the worker died) lets another worker claim it again, and only the lease's owner records the
    outcome. Queued jobs are claimed by `run_after` (a retry waits out its backoff there).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        # The claim reads queued jobs due now in this order, from this index alone.
        sa.Index("ix_jobs_status_run_after", "status", "run_after"),
    )

    kind: str = Field(max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Who asked (None once that user is purged, or for the system). Personal jobs have no organization.
    requested_by: UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL", index=True)
    organization_id: UUID | None = Field(default=None, foreign_key="organizations.id", ondelete="CASCADE", index=True)
    request_id: str | None = Field(default=None, max_length=REQUEST_ID_MAX_LENGTH)  # the X-Request-ID that queued it
    # The W3C `traceparent` of the request that queued it (traces on): the job's span links to it.
    trace_context: str | None = Field(default=None, max_length=TRACE_CONTEXT_MAX_LENGTH)
    status: JobStatus = Field(default=JobStatus.QUEUED, sa_type=sa.String(16))
    attempts: int = 0  # claims so far, the current one included
    run_after: datetime = Field(default_factory=utcnow)
    lease_owner: str | None = Field(default=None, max_length=128)
    # Set while running only, so the claim's look for expired leases reads a small range of this index.
    lease_expires_at: datetime | None = Field(default=None, index=True)
    started_at: datetime | None = None  # the latest attempt's start
    finished_at: datetime | None = Field(default=None, index=True)  # succeeded or failed: purged after a while
    failure_reason: str | None = Field(default=None, max_length=FAILURE_REASON_MAX_LENGTH)
    # SQL NULL (not JSON null) while there is no result. Loaded only when read (see __mapper_args__).
    result: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(none_as_null=True))

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805
        return {"properties": {"result": deferred(cls.__table__.c.result)}}
