"""The registry of job kinds: what each kind runs, who may start it, and whose job it is.

    job_kinds.register("user_export", export_user, reads=(...), admit=personal)

A handler is `handler(uow, job) -> dict`: run by a worker in a unit of work of its own as
`Actor.system()`, it reads only what belongs to `job.requested_by` / `job.organization_id` and
returns the result, a JSON document. It must be idempotent (a job whose worker died is run again):
reading and returning is; a handler that changes rows must be safe to run twice. It raises a
`DomainError` for a failure that a retry cannot fix (the job fails with its message); a transient
error (the database or an HTTP peer unreachable) is retried with backoff (see `runner.py`).
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from app.domains.base.actors import Actor
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.jobs.models import Job

type Handler = Callable[[UnitOfWork, Job], dict[str, Any]]
# Called by `JobService.enqueue`, as the actor starting the job: raises when the actor may not start
# it with these parameters; returns the organization the job belongs to (None: a personal job).
type Admission = Callable[[UnitOfWork, Actor, Mapping[str, Any]], UUID | None]

_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def in_active_organization(_uow: UnitOfWork, actor: Actor, _parameters: Mapping[str, Any]) -> UUID | None:
    """The default: anyone with `jobs:write` starts it, in the request's active organization."""
    return actor.organization_id


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str
    handler: Handler
    admit: Admission
    # Permissions the actor needs, besides jobs:write to start it and jobs:read to read its result:
    # those that would let it read the result's data directly (an export gives no more than that).
    reads: frozenset[str]
    # A user's own job (its data): an organization's admins never see it, even when it belongs to
    # their organization (a personal job started with that organization active).
    personal: bool = False


class JobKinds:
    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        admit: Admission = in_active_organization,
        reads: Iterable[str] = (),
        personal: bool = False,
    ) -> Handler:
        if not _KIND_NAME.fullmatch(kind):
            raise ValueError(f"job kind {kind!r}: lower case letters, digits and _, at most 64")
        if kind in self._kinds:
            raise ValueError(f"job kind {kind!r} is registered twice")
        self._kinds[kind] = JobKind(kind, handler, admit, frozenset(reads), personal)
        return handler

    def get(self, kind: str) -> JobKind | None:
        return self._kinds.get(kind)

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def personal(self) -> list[str]:
        """The kinds an organization's admins never see (a user's own jobs)."""
        return sorted(name for name, kind in self._kinds.items() if kind.personal)


job_kinds = JobKinds()
