"""Use cases of the jobs domain.

Clients' side: `enqueue` writes the job in the caller's unit of work (a job exists if and only if
the request that started it committed), `page` / `get` / `result` read it under the row policy.

The dispatcher's side, reserved to the system: `claim` leases jobs to a worker, `complete` and
`fail` record an outcome only while the worker still holds the lease (fencing), `purge_finished`
deletes old finished jobs. `runner.py` runs them.
"""

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Update, delete, select, update
from sqlmodel import col

from app.domains.base.actors import Actor, AuthMethod, require_admin, require_permission
from app.domains.base.exceptions import ConflictError, DomainValidationError, PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.base.service import Service
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.jobs.kinds import job_kinds
from app.domains.jobs.models import (
    FAILURE_REASON_MAX_LENGTH,
    REQUEST_ID_MAX_LENGTH,
    TRACE_CONTEXT_MAX_LENGTH,
    Job,
    JobStatus,
)
from app.domains.jobs.repository import JobRepository
from app.domains.jobs.rules import JobLimits, ensure_system, jobs_policy

RESULT_TOO_LARGE = "result too large"
RESULT_NOT_JSON = "the result is not a JSON document"
WORKER_LOST = "its worker stopped responding (its lease expired) on its last attempt"
# What `enqueue` sets on a new job; the rest (status, lease, result) is the dispatcher's.
ENQUEUED_FIELDS = frozenset({"kind", "parameters", "requested_by", "organization_id", "request_id", "trace_context"})
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobService(Service[Job]):
    repository_type = JobRepository
    policy = jobs_policy
    search_fields = frozenset({"kind"})

    def __init__(self, uow: UnitOfWork, actor: Actor | None = None, *, limits: JobLimits) -> None:
        """`limits` are the settings' (the bootstrap's factory passes them)."""
        super().__init__(uow, actor)
        self.limits = limits

    def to_model_on_create(self, data: Any) -> Any:
        if self.actor.method is not AuthMethod.SYSTEM and (reserved := set(data) - ENQUEUED_FIELDS):
            raise PermissionDeniedError(f"{', '.join(sorted(reserved))} are set by the workers, not on a new job")
        return data

    def to_model_on_update(self, data: Any) -> Any:
        ensure_system(self.actor)
        return data

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        ensure_system(self.actor)
        return super().delete(*args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        ensure_system(self.actor)
        return super().delete_many(*args, **kwargs)

    def delete_where(self, *args: Any, **kwargs: Any) -> Any:
        ensure_system(self.actor)
        return super().delete_where(*args, **kwargs)

    # -- clients ---------------------------------------------------------------------------------

    def enqueue(
        self, kind: str, parameters: Mapping[str, Any], request_id: str | None = None, trace_context: str | None = None
    ) -> Job:
        """Queue a job of a registered kind, asked by the actor, in the unit's transaction: it is
        stored if and only if the unit commits. The kind decides who may start it and which
        organization it belongs to (see `kinds.py`). `request_id` and `trace_context` (a W3C
        traceparent) name the request that queued it, for the worker's logs and traces."""
        registered = job_kinds.get(kind)
        if registered is None:
            raise DomainValidationError(
                f"unknown job kind {kind!r}", [{"key": "kind", "message": f"one of {', '.join(job_kinds.names())}"}]
            )
        try:
            json.dumps(parameters, allow_nan=False)
        except (TypeError, ValueError):
            raise DomainValidationError(
                "a job's parameters are a JSON object", [{"key": "parameters", "message": "JSON values only"}]
            ) from None
        for permission in sorted(registered.reads):
            require_permission(self.actor, permission)
        organization_id = registered.admit(self.uow, self.actor, parameters)
        values = {
            "kind": kind,
            "parameters": dict(parameters),
            "requested_by": self.actor.user_id,
            "organization_id": organization_id,
            "request_id": request_id[:REQUEST_ID_MAX_LENGTH] if request_id else None,
            "trace_context": trace_context
            if trace_context and len(trace_context) <= TRACE_CONTEXT_MAX_LENGTH
            else None,
        }
        return self.create(values)

    def result(self, job_id: UUID) -> dict[str, Any]:
        """The document a job produced: once it has succeeded, to whoever may see the job and read
        what the document holds (a 409 before, with the job's status as `reason`)."""
        job = self.get(job_id)
        registered = job_kinds.get(job.kind)
        for permission in sorted(registered.reads if registered is not None else ()):
            require_permission(self.actor, permission)
        if job.status != JobStatus.SUCCEEDED or job.result is None:
            raise ConflictError("the job has not succeeded", reason=str(job.status))
        return job.result

    # -- the dispatcher (the system) -------------------------------------------------------------

    def claim(self, worker_id: str, lease_seconds: float, limit: int = 1) -> list[Job]:
        """Lease up to `limit` jobs to `worker_id` for `lease_seconds`: jobs whose worker stopped
        (running, lease expired) first, then queued jobs due now, oldest first. Each is `running`,
        one attempt more. On PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED, so
        concurrent claimers never get the same job and never wait for each other; SQLite's write
        lock serialises claims (one worker is the supported case there).

        A job whose lease expired on its last allowed attempt is failed instead of run again: a job
        that kills its worker every time must not do so forever."""
        ensure_system(self.actor)
        if limit < 1 or lease_seconds <= 0:
            raise DomainValidationError("a claim takes at least one job, for some time")
        now = utcnow()
        expired = [col(Job.status) == JobStatus.RUNNING, col(Job.lease_expires_at) <= now]
        self._write_picked(
            [*expired, col(Job.attempts) >= self.limits.max_attempts],
            col(Job.lease_expires_at),
            None,
            status=JobStatus.FAILED,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            failure_reason=WORKER_LOST,
        )
        lease = {
            "status": JobStatus.RUNNING,
            "attempts": col(Job.attempts) + 1,
            "lease_owner": worker_id,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "started_at": now,
            "updated_at": now,
        }
        claimed = self._claim_picked(expired, col(Job.lease_expires_at), limit, lease)
        if len(claimed) < limit:
            due = [col(Job.status) == JobStatus.QUEUED, col(Job.run_after) <= now]
            claimed += self._claim_picked(due, col(Job.run_after), limit - len(claimed), lease)
        return claimed

    def complete(self, job_id: UUID, worker_id: str, result: dict[str, Any]) -> bool:
        """Record the result of a job `worker_id` holds: `succeeded`. A result that is not a JSON
        document, or larger than the limit once serialised, fails the job instead. False when the
        worker no longer holds the job (another claimed it after its lease expired): nothing changes."""
        ensure_system(self.actor)
        try:
            if not isinstance(result, dict):
                raise TypeError(type(result).__name__)
            # Measured as the JSON column stores it (SQLAlchemy's default serializer: `json.dumps`,
            # ASCII with escapes and spaced separators), so the limit is what a row holds.
            size = len(json.dumps(result, allow_nan=False))
        except (TypeError, ValueError):  # not a dict, a value JSON has no form for, NaN
            return self.fail(job_id, worker_id, RESULT_NOT_JSON, retryable=False)
        if size > self.limits.result_max_bytes:
            return self.fail(job_id, worker_id, RESULT_TOO_LARGE, retryable=False)
        now = utcnow()
        finished = {"status": JobStatus.SUCCEEDED, "result": result, "failure_reason": None, "finished_at": now}
        return self._finish(job_id, worker_id, now, **finished)

    def fail(self, job_id: UUID, worker_id: str, reason: str, retryable: bool) -> bool:
        """Record the failure of a job `worker_id` holds. A retryable one goes back to the queue
        until `run_after` (the backoff doubles with each attempt) while attempts remain; otherwise,
        and after the last attempt, the job is `failed` with `reason`. False, changing nothing,
        when the worker no longer holds the job."""
        ensure_system(self.actor)
        held = [col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING, col(Job.lease_owner) == worker_id]
        attempts = self.session.scalar(select(col(Job.attempts)).where(*held))
        if attempts is None:
            return False
        reason = reason[:FAILURE_REASON_MAX_LENGTH]
        now = utcnow()
        wait = self.limits.retries_after(attempts) if retryable else None
        if wait is None:
            outcome: dict[str, Any] = {"status": JobStatus.FAILED, "finished_at": now}
        else:
            outcome = {"status": JobStatus.QUEUED, "run_after": now + wait}
        # The attempt read above: a claim in between (the lease expired meanwhile) changes nothing here.
        return self._finish(job_id, worker_id, now, col(Job.attempts) == attempts, failure_reason=reason, **outcome)

    def purge_finished(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` jobs that finished (succeeded or failed) before then, results with
        them. Call again until it returns less than `limit`."""
        require_admin(self.actor)
        old = (
            select(col(Job.id))
            .where(col(Job.status).in_(FINISHED), col(Job.finished_at) < before)
            .order_by(col(Job.finished_at))
            .limit(limit)
        )
        return self.affected_rows(delete(Job).where(col(Job.id).in_(old.scalar_subquery())))

    def _finish(self, job_id: UUID, worker_id: str, now: datetime, *where: ColumnElement[bool], **values: Any) -> bool:
        """Set `values` on the job if `worker_id` still holds it: its lease ends either way."""
        held = [col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING, col(Job.lease_owner) == worker_id]
        lease_ended = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
        statement = update(Job).where(*held, *where).values(**values, **lease_ended)
        return self.affected_rows(statement.execution_options(synchronize_session=False)) == 1

    def _picked(self, where: list[ColumnElement[bool]], order: Any, limit: int | None) -> Any:
        """The ids of the jobs matching `where`, oldest by `order` first, locked for this
        transaction and skipping those another claimer has locked (PostgreSQL; SQLite ignores it)."""
        picked = select(col(Job.id)).where(*where).order_by(order)
        if limit is not None:
            picked = picked.limit(limit)
        return picked.with_for_update(skip_locked=True).cte("picked")

    def _write_picked(self, where: list[ColumnElement[bool]], order: Any, limit: int | None, **values: Any) -> int:
        picked = self._picked(where, order, limit)
        statement: Update = update(Job).where(col(Job.id).in_(select(picked.c.id))).values(**values)
        return self.affected_rows(statement.execution_options(synchronize_session=False))

    def _claim_picked(
        self, where: list[ColumnElement[bool]], order: Any, limit: int, lease: dict[str, Any]
    ) -> list[Job]:
        picked = self._picked(where, order, limit)
        statement = update(Job).where(col(Job.id).in_(select(picked.c.id))).values(**lease).returning(Job)
        options = {"synchronize_session": False, "populate_existing": True}
        return sorted(self.session.scalars(statement, execution_options=options), key=lambda job: job.run_after)
