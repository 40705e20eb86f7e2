"""Rules of the jobs domain: who sees which jobs, who runs them, how failures are retried.

Who sees a job: app admins every job; anyone else the jobs its user asked for (a personal job
anywhere, an organization's job only while that organization is active, as the tenant rule says),
and an organization's admins every job of their active organization but its members' own (kinds
registered `personal`). Any other job is a 404.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, and_, false, or_

from app.domains.base.actors import Actor, AuthMethod
from app.domains.base.exceptions import NotFoundError, PermissionDeniedError
from app.domains.jobs.kinds import job_kinds

# A retry never waits longer than this, however many attempts came before.
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RequestedByOrOfActiveOrganization:
    def row_filter(self, actor: Actor, model: type[Any]) -> ColumnElement[bool] | None:
        if actor.is_admin:
            return None
        if actor.user_id is None:
            return false()
        organization: ColumnElement[Any] = model.organization_id
        in_reach: ColumnElement[bool] = organization.is_(None)  # a personal job, or one of the active organization
        if actor.organization_id is not None:
            in_reach = or_(in_reach, organization == actor.organization_id)
        own = and_(model.requested_by == actor.user_id, in_reach)
        if not actor.is_organization_admin:
            return own
        return or_(own, and_(organization == actor.organization_id, model.kind.not_in(job_kinds.personal())))

    def allows(self, actor: Actor, row: Any) -> bool:
        if actor.is_admin:
            return True
        if actor.user_id is None:
            return False
        in_reach = row.organization_id is None or row.organization_id == actor.organization_id
        own = row.requested_by == actor.user_id and in_reach
        organizations = row.organization_id == actor.organization_id and row.kind not in job_kinds.personal()
        return own or (actor.is_organization_admin and organizations)


jobs_policy = RequestedByOrOfActiveOrganization()


@dataclass(frozen=True, slots=True)
class JobLimits:
    """How jobs are retried and how large a result may be (from settings, through the bootstrap)."""

    max_attempts: int = 5
    retry_backoff_seconds: float = 2.0
    result_max_bytes: int = 1024 * 1024

    def retries_after(self, attempts: int) -> timedelta | None:
        """The wait before the next attempt of a job whose attempt number `attempts` failed with a
        transient error (the base, doubling each time, at most MAX_BACKOFF); None: no attempt left."""
        if attempts >= self.max_attempts:
            return None
        doublings = min(max(attempts - 1, 0), 32)  # 2**32 base periods is past MAX_BACKOFF anyway
        return min(timedelta(seconds=self.retry_backoff_seconds * 2**doublings), MAX_BACKOFF)


def ensure_system(actor: Actor) -> None:
    """Claiming, completing and failing jobs: the dispatcher's, which runs as the system (no user)."""
    if actor.method is not AuthMethod.SYSTEM or actor.user_id is not None:
        raise PermissionDeniedError("only the system runs jobs")


def ensure_can_export_organization(actor: Actor, organization_id: UUID) -> None:
    """An organization's export: its admins, from inside it (it is their active organization), and
    app admins. From another organization it is not there (404); a member may not (403)."""
    if actor.is_admin:
        return
    if actor.organization_id != organization_id:
        raise NotFoundError("Organization not found")
    if not actor.is_organization_admin:
        raise PermissionDeniedError("only the organization's admins may export it", reason="organization_role")
