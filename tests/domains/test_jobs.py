"""The jobs domain on both databases: the row policy, enqueueing in the caller's transaction, the
dispatcher's claim (exclusive under concurrency, leases that expire), fencing, retries with
backoff, result bounds, exports' contents and purging. Jobs run in-process through `drain`."""

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.bootstrap import Container, bootstrap
from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
    PermissionDeniedError,
)
from app.domains.base.lists import ListParams
from app.domains.base.models import utcnow
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.jobs.kinds import job_kinds
from app.domains.jobs.models import Job, JobStatus
from app.domains.jobs.runner import drain, is_transient, run_job
from app.domains.jobs.service import RESULT_NOT_JSON, RESULT_TOO_LARGE, WORKER_LOST, JobService
from app.domains.organizations.models import Membership, Organization
from app.domains.projects.models import Project
from app.domains.projects.permissions import ProjectPermission
from app.domains.users.models import APIKey, User
from app.infrastructure.config import PROJECT_ROOT, Settings
from tests.conftest import actor_of
from tests.helpers import backend_name

# -- test kinds: what their handlers did, counted per job ----------------------------------------

EFFECTS: Counter[UUID] = Counter()
_effects_lock = threading.Lock()


def _noop(_uow: UnitOfWork, job: Job) -> dict[str, Any]:
    with _effects_lock:
        EFFECTS[job.id] += 1
    return {"job": str(job.id)}


def _scripted(_uow: UnitOfWork, job: Job) -> dict[str, Any]:
    """Fails its attempts as `parameters["failures"]` says (one entry per attempt), then returns
    `parameters["size"]` characters (or `parameters["value"]` as it is)."""
    with _effects_lock:
        EFFECTS[job.id] += 1
    failures = job.parameters.get("failures", [])
    if job.attempts <= len(failures):
        failure = failures[job.attempts - 1]
        if failure == "database":
            raise sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
        if failure == "http":
            raise httpx.ConnectError("connection refused")
        if failure == "domain":
            raise NotFoundError("the thing to export is gone")
        raise KeyError("a bug")
    if "value" in job.parameters:
        return job.parameters["value"]  # type: ignore[no-any-return]
    return {"blob": "x" * job.parameters.get("size", 0)}


def _logging(_uow: UnitOfWork, job: Job) -> dict[str, Any]:
    logging.getLogger("app.test_job").info("working")
    if job.parameters.get("fail"):
        raise KeyError("a bug")
    return {}


job_kinds.register("test_noop", _noop)
job_kinds.register("test_scripted", _scripted)
job_kinds.register("test_logging", _logging)

# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def fast(settings: Settings) -> Iterator[Container]:
    """A second container on the same database, with short backoffs, three attempts and a 1 KiB
    result limit (the settings a deployment would change)."""
    overrides = {"job_retry_backoff_seconds": 0.2, "job_max_attempts": 3, "job_result_max_bytes": 1024}
    container = bootstrap(settings.model_copy(update=overrides))
    yield container
    container.dispose()


def enqueue(container: Container, actor: Actor, kind: str = "test_noop", **parameters: Any) -> Job:
    with container.unit_of_work(actor) as uow:
        return uow.service(JobService).enqueue(kind, parameters)


def claim(container: Container, worker: str, lease_seconds: float = 60, limit: int = 1) -> list[Job]:
    with container.unit_of_work(Actor.system()) as uow:
        return uow.service(JobService).claim(worker, lease_seconds, limit)


def stored(session: Session, job_id: UUID) -> Job:
    session.expire_all()
    job = session.get(Job, job_id)
    assert job is not None
    return job


def visible_ids(container: Container, actor: Actor) -> set[UUID]:
    with container.unit_of_work(actor) as uow:
        return {job.id for job in uow.service(JobService).page(ListParams(limit=100)).items}


def member_actor(user: User, organization: Organization | None, role: str | None = None) -> Actor:
    actor = actor_of(user)
    return actor.in_organization(organization.id, role) if organization is not None else actor


# -- enqueueing ----------------------------------------------------------------------------------


def test_a_job_is_stored_only_if_its_unit_of_work_commits(container: Container, make_user, session: Session) -> None:
    """The job is written in the caller's transaction: a use case that fails after queuing leaves none."""
    user = make_user()

    def export_then_fail() -> None:
        with container.unit_of_work(actor_of(user)) as uow:
            queued = uow.service(JobService).enqueue("user_export", {}, request_id="req-1")
            assert queued.status == JobStatus.QUEUED
            raise ConflictError("the rest of the request failed")

    with pytest.raises(ConflictError):
        export_then_fail()
    assert session.scalar(select(func.count()).select_from(Job)) == 0

    job = enqueue(container, actor_of(user), "user_export")
    assert (job.requested_by, job.organization_id, job.attempts, job.lease_owner) == (user.id, None, 0, None)
    assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_unknown_kinds_and_parameters_are_refused(container: Container, make_user, make_organization) -> None:
    actor = actor_of(make_user())
    with pytest.raises(DomainValidationError, match="unknown job kind") as refused:
        enqueue(container, actor, "no_such_kind")
    assert "user_export" in refused.value.extra["errors"][0]["message"]
    with pytest.raises(DomainValidationError, match="takes no parameters"):
        enqueue(container, actor, "user_export", format="csv")
    with pytest.raises(DomainValidationError, match="organization_id"):
        enqueue(container, Actor.system(), "organization_export", organization_id="not-an-id")
    with pytest.raises(PermissionDeniedError, match="started by the user it exports"):
        enqueue(container, Actor.system(), "user_export")


def test_an_export_needs_the_read_permissions_of_what_it_exports(container: Container, make_user) -> None:
    """A credential that may start jobs but not read keys gets no key metadata through an export."""
    user = make_user()
    narrow = actor_of(user, frozenset({"jobs:read", "jobs:write", "users:read"}))
    with pytest.raises(PermissionDeniedError) as refused:
        enqueue(container, narrow, "user_export")
    assert refused.value.extra["required_permission"] == "api_keys:read"

    job = enqueue(container, actor_of(user), "user_export")
    drain(container.unit_of_work, "worker-1", 60)
    with container.unit_of_work(narrow) as uow, pytest.raises(PermissionDeniedError):
        uow.service(JobService).result(job.id)


# -- who sees which job --------------------------------------------------------------------------


def test_row_policy_own_jobs_organization_admins_and_app_admins(
    container: Container, make_user, make_organization, make_membership
) -> None:
    acme, globex = make_organization(), make_organization()
    member, other, org_admin, app_admin = make_user(), make_user(), make_user(), make_user(role=Role.ADMIN)
    for user, role in ((member, "member"), (other, "member"), (org_admin, "admin")):
        make_membership(acme, user, role)
    in_acme = member_actor(member, acme, "member")
    personal = enqueue(container, member_actor(member, None), "user_export")  # no active organization
    # Started inside acme: acme's (it holds only acme's rows), yet never shown to acme's admins.
    personal_in_acme = enqueue(container, in_acme, "user_export")
    in_organization = enqueue(container, in_acme)  # the default kind: the active organization's
    others = enqueue(container, member_actor(other, acme, "member"))
    acme_admin = member_actor(org_admin, acme, "admin")
    export = enqueue(container, acme_admin, "organization_export", organization_id=str(acme.id))
    elsewhere = enqueue(container, member_actor(member, globex, "member"))
    assert (personal.organization_id, personal_in_acme.organization_id) == (None, acme.id)
    assert (in_organization.organization_id, export.organization_id) == (acme.id, acme.id)

    assert visible_ids(container, in_acme) == {personal.id, personal_in_acme.id, in_organization.id}
    assert visible_ids(container, member_actor(member, None)) == {personal.id}  # no organization: its own
    assert visible_ids(container, member_actor(member, globex, "member")) == {personal.id, elsewhere.id}
    assert visible_ids(container, member_actor(other, acme, "member")) == {others.id}
    # An organization's admins: the organization's jobs, never a member's personal one.
    assert visible_ids(container, acme_admin) == {in_organization.id, others.id, export.id}
    everything = {personal.id, personal_in_acme.id, in_organization.id, others.id, export.id, elsewhere.id}
    assert visible_ids(container, actor_of(app_admin)) == everything
    assert visible_ids(container, Actor.system()) == everything

    with container.unit_of_work(member_actor(other, acme, "member")) as uow:
        for hidden in (personal, personal_in_acme, in_organization, export):
            with pytest.raises(NotFoundError):
                uow.service(JobService).get(hidden.id)
            with pytest.raises(NotFoundError):
                uow.service(JobService).result(hidden.id)


def test_organization_exports_are_for_its_admins_from_inside_it(
    container: Container, make_user, make_organization, make_membership
) -> None:
    acme, globex = make_organization(), make_organization()
    gone = make_organization(deleted_at=utcnow())
    member, org_admin, app_admin = make_user(), make_user(), make_user(role=Role.ADMIN)
    make_membership(acme, member, "member")
    make_membership(acme, org_admin, "admin")

    def start(actor: Actor, organization: Organization) -> Job:
        return enqueue(container, actor, "organization_export", organization_id=str(organization.id))

    with pytest.raises(PermissionDeniedError) as refused:
        start(member_actor(member, acme, "member"), acme)
    assert refused.value.extra["reason"] == "organization_role"
    with pytest.raises(NotFoundError):
        start(member_actor(org_admin, acme, "admin"), globex)  # another organization: not there
    with pytest.raises(NotFoundError):
        start(member_actor(org_admin, None), acme)  # not from inside it
    with pytest.raises(NotFoundError):
        start(actor_of(app_admin), gone)
    assert start(member_actor(org_admin, acme, "admin"), acme).organization_id == acme.id
    assert start(actor_of(app_admin), globex).organization_id == globex.id  # app admins: any live one


# -- the dispatcher ------------------------------------------------------------------------------


def test_claiming_runs_and_completing_are_the_systems(container: Container, make_user) -> None:
    user = make_user(role=Role.ADMIN)
    job = enqueue(container, actor_of(user), "user_export")
    for actor in (actor_of(user), Actor.on_behalf_of(user.id, Role.ADMIN)):
        with container.unit_of_work(actor) as uow:
            jobs = uow.service(JobService)
            for attempt in (
                partial(jobs.claim, "w", 60),
                partial(jobs.complete, job.id, "w", {}),
                partial(jobs.fail, job.id, "w", "no", retryable=False),
                partial(jobs.update, {"status": JobStatus.SUCCEEDED}, job.id),
                partial(jobs.delete, job.id),
            ):
                with pytest.raises(PermissionDeniedError):
                    attempt()
    with container.unit_of_work(actor_of(make_user())) as uow, pytest.raises(PermissionDeniedError):
        uow.service(JobService).create({"kind": "test_noop", "status": JobStatus.SUCCEEDED})


def test_a_claim_takes_due_jobs_oldest_first_and_leases_them(container: Container, session: Session) -> None:
    first, second, third = (enqueue(container, Actor.system()) for _ in range(3))
    session.execute(update(Job).where(Job.id == third.id).values(run_after=utcnow() + timedelta(hours=1)))
    session.commit()

    claimed = claim(container, "worker-1", lease_seconds=30, limit=5)
    assert [job.id for job in claimed] == [first.id, second.id]  # the third is not due
    job = stored(session, first.id)
    assert (job.status, job.attempts, job.lease_owner) == (JobStatus.RUNNING, 1, "worker-1")
    assert job.started_at is not None
    assert job.lease_expires_at is not None
    assert timedelta(seconds=29) < job.lease_expires_at - job.started_at <= timedelta(seconds=30)
    assert claim(container, "worker-2") == []  # leased: no one else gets them


def test_concurrent_claimers_never_get_the_same_job(container: Container, settings: Settings) -> None:
    """8 threads claim from 200 queued jobs in batches of 1 to 7: every job is claimed exactly once.
    PostgreSQL's SKIP LOCKED lets them claim side by side; SQLite's write lock takes them in turn."""
    with container.unit_of_work(Actor.system()) as uow:
        queued = {uow.service(JobService).enqueue("test_noop", {}).id for _ in range(200)}
    claims: dict[str, list[UUID]] = {f"worker-{n}": [] for n in range(8)}
    start = threading.Barrier(len(claims))
    errors: list[BaseException] = []

    def worker(name: str, batch: int) -> None:
        try:
            start.wait()
            while claimed := claim(container, name, limit=batch):
                claims[name] += [job.id for job in claimed]
        except BaseException as error:  # reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(name, 1 + n % 7)) for n, name in enumerate(claims)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    every_claim = [job_id for ids in claims.values() for job_id in ids]
    assert len(every_claim) == len(set(every_claim)) == 200
    assert set(every_claim) == queued
    if backend_name(settings) == "postgresql":
        assert sum(1 for ids in claims.values() if ids) > 1, "the claims were not concurrent"
    with container.unit_of_work(Actor.system()) as uow:
        rows = uow.session.execute(select(Job.id, Job.lease_owner, Job.attempts)).all()
    owner = {job_id: name for name, ids in claims.items() for job_id in ids}
    assert all(lease_owner == owner[job_id] and attempts == 1 for job_id, lease_owner, attempts in rows)


def test_concurrent_drains_run_each_job_once(container: Container) -> None:
    """4 workers drain 60 jobs at once: each handler ran once, and every job succeeded."""
    with container.unit_of_work(Actor.system()) as uow:
        queued = [uow.service(JobService).enqueue("test_noop", {}).id for _ in range(60)]
    ran: list[int] = []
    threads = [
        threading.Thread(target=lambda n=n: ran.append(drain(container.unit_of_work, f"worker-{n}", 60)))
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(ran) == 60
    assert all(EFFECTS[job_id] == 1 for job_id in queued)
    with container.unit_of_work(Actor.system()) as uow:
        statuses = Counter(uow.session.scalars(select(Job.status).where(Job.id.in_(queued))))
    assert statuses == {JobStatus.SUCCEEDED: 60}


def test_a_dead_workers_job_is_claimed_again_once_its_lease_expires(container: Container, session: Session) -> None:
    job = enqueue(container, Actor.system())
    assert [j.id for j in claim(container, "dead-worker", lease_seconds=0.2)] == [job.id]
    assert claim(container, "worker-2") == []  # leased
    time.sleep(0.3)

    assert drain(container.unit_of_work, "worker-2", 60) == 1  # the expired lease is taken over
    finished = stored(session, job.id)
    assert (finished.status, finished.attempts, finished.lease_owner) == (JobStatus.SUCCEEDED, 2, None)
    assert EFFECTS[job.id] == 1  # the dead worker never ran it; the second did, once
    with container.unit_of_work(Actor.system()) as uow:  # the dead worker comes back: nothing changes
        jobs = uow.service(JobService)
        assert jobs.complete(job.id, "dead-worker", {"late": True}) is False
        assert jobs.fail(job.id, "dead-worker", "late", retryable=True) is False
    assert stored(session, job.id).status == JobStatus.SUCCEEDED
    assert run_job(container.unit_of_work, job.id, "dead-worker") is None  # and it does not run it again


def test_a_late_worker_is_fenced_off_by_the_one_that_took_over(container: Container, session: Session) -> None:
    job = enqueue(container, Actor.system())
    claim(container, "slow-worker", lease_seconds=0.2)
    time.sleep(0.3)
    assert [j.id for j in claim(container, "worker-2", lease_seconds=60)] == [job.id]

    with container.unit_of_work(Actor.system()) as uow:
        assert uow.service(JobService).complete(job.id, "slow-worker", {"stale": True}) is False
        assert uow.service(JobService).fail(job.id, "slow-worker", "stale", retryable=False) is False
    assert (stored(session, job.id).status, stored(session, job.id).lease_owner) == (JobStatus.RUNNING, "worker-2")
    with container.unit_of_work(Actor.system()) as uow:
        assert uow.service(JobService).complete(job.id, "worker-2", {"fresh": True}) is True
        assert uow.service(JobService).result(job.id) == {"fresh": True}


def test_a_job_that_kills_its_workers_fails_after_the_last_attempt(fast: Container, session: Session) -> None:
    job = enqueue(fast, Actor.system())
    for attempt in (1, 2, 3):
        assert [j.attempts for j in claim(fast, f"worker-{attempt}", lease_seconds=0.1)] == [attempt]
        time.sleep(0.15)
    assert claim(fast, "worker-4") == []
    failed = stored(session, job.id)
    assert (failed.status, failed.attempts, failed.lease_owner) == (JobStatus.FAILED, 3, None)
    assert failed.failure_reason == WORKER_LOST
    assert failed.finished_at is not None


# -- retries and failures ------------------------------------------------------------------------


def test_transient_failures_retry_with_doubling_backoff_then_fail_with_the_reason(
    fast: Container, session: Session
) -> None:
    job = enqueue(fast, Actor.system(), "test_scripted", failures=["database", "http", "database"])
    waits = []
    for attempt in (1, 2):
        assert drain(fast.unit_of_work, "worker-1", 60) == 1  # runs it once; the retry is not due yet
        queued = stored(session, job.id)
        assert (queued.status, queued.attempts, queued.lease_owner) == (JobStatus.QUEUED, attempt, None)
        assert queued.failure_reason == f"transient error ({['OperationalError', 'ConnectError'][attempt - 1]})"
        waits.append((queued.run_after - queued.updated_at).total_seconds())
        time.sleep(waits[-1] + 0.05)
    assert waits == pytest.approx([0.2, 0.4], abs=0.02)  # JOB_RETRY_BACKOFF_SECONDS, doubled

    assert drain(fast.unit_of_work, "worker-1", 60) == 1
    failed = stored(session, job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 3)  # JOB_MAX_ATTEMPTS
    assert failed.failure_reason == "transient error (OperationalError)"
    assert EFFECTS[job.id] == 3


def test_a_transient_failure_then_a_success(fast: Container, session: Session) -> None:
    job = enqueue(fast, Actor.system(), "test_scripted", failures=["http"], size=3)
    drain(fast.unit_of_work, "worker-1", 60)
    time.sleep(0.25)
    drain(fast.unit_of_work, "worker-1", 60)
    done = stored(session, job.id)
    assert (done.status, done.attempts, done.failure_reason) == (JobStatus.SUCCEEDED, 2, None)
    with fast.unit_of_work(Actor.system()) as uow:
        assert uow.service(JobService).result(job.id) == {"blob": "xxx"}


@pytest.mark.parametrize(
    ("failure", "reason"),
    [("domain", "the thing to export is gone"), ("bug", "internal error (KeyError)")],
)
def test_domain_errors_and_bugs_fail_at_once(fast: Container, session: Session, failure: str, reason: str) -> None:
    job = enqueue(fast, Actor.system(), "test_scripted", failures=[failure])
    assert run_job(fast.unit_of_work, claim(fast, "worker-1")[0].id, "worker-1") == JobStatus.FAILED
    failed = stored(session, job.id)
    assert (failed.status, failed.attempts, failed.failure_reason) == (JobStatus.FAILED, 1, reason)
    with fast.unit_of_work(Actor.system()) as uow, pytest.raises(ConflictError) as refused:
        uow.service(JobService).result(job.id)
    assert refused.value.extra["reason"] == "failed"


@pytest.mark.parametrize("fail", [False, True])
def test_a_jobs_log_records_carry_its_id_and_its_requests_id(
    container: Container, database: object, caplog: pytest.LogCaptureFixture, fail: bool
) -> None:
    """Every record logged while the job runs, its handler's and the runner's outcome line alike;
    none after it."""
    with container.unit_of_work(Actor.system()) as uow:
        job = uow.service(JobService).enqueue("test_logging", {"fail": fail}, request_id="req-queued-it")
    with caplog.at_level(logging.INFO):
        run_job(container.unit_of_work, claim(container, "worker-1")[0].id, "worker-1")
        logging.getLogger("app.test_job").info("after")
    records = [record for record in caplog.records if record.name.startswith(("app.test_job", "app.domains.jobs"))]
    *during, after = records
    assert [record.getMessage().split(" (")[0] for record in during] == [
        "working",
        *([f"job {job.id} failed"] if fail else []),
        f"job {job.id}: {'failed' if fail else 'succeeded'}",
    ]
    assert {(record.job_id, record.request_id) for record in during} == {(str(job.id), "req-queued-it")}
    assert not hasattr(after, "job_id")
    assert not hasattr(after, "request_id")


def test_transient_errors_are_told_apart() -> None:
    assert is_transient(sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError()))
    assert is_transient(httpx.ReadTimeout("slow"))
    wrapped = RuntimeError("the Backend API is down")
    wrapped.__cause__ = httpx.ConnectError("refused")
    assert is_transient(wrapped)
    assert not is_transient(NotFoundError("gone"))
    assert not is_transient(KeyError("bug"))
    assert not is_transient(
        httpx.HTTPStatusError("404", request=httpx.Request("GET", "/"), response=httpx.Response(404))
    )


def test_results_are_bounded_and_json(fast: Container, session: Session) -> None:
    """JOB_RESULT_MAX_BYTES (1 KiB here) bounds the serialised document."""
    fits = enqueue(fast, Actor.system(), "test_scripted", size=900)
    too_large = enqueue(fast, Actor.system(), "test_scripted", size=1100)
    not_json = enqueue(fast, Actor.system(), "test_scripted", value=["a list, not a document"])
    assert drain(fast.unit_of_work, "worker-1", 60) == 3
    assert stored(session, fits.id).status == JobStatus.SUCCEEDED
    for job, reason in ((too_large, RESULT_TOO_LARGE), (not_json, RESULT_NOT_JSON)):
        failed = stored(session, job.id)
        assert (failed.status, failed.failure_reason, failed.attempts) == (JobStatus.FAILED, reason, 1)
    assert session.scalar(select(Job.result).where(Job.id == too_large.id)) is None  # SQL NULL, nothing kept
    assert session.scalar(select(func.count()).select_from(Job).where(Job.result.is_(None))) == 2


def test_the_result_bound_holds_for_what_is_stored(fast: Container, session: Session) -> None:
    """The limit is on the result as the database stores it: a document of non-ASCII text (stored
    escaped, `\\u20ac` for `€`) or of many small values (stored with a space after each separator)
    must not land at several times the limit."""
    euros = enqueue(fast, Actor.system(), "test_scripted", value={"text": "\u20ac" * 300})  # 900 bytes in UTF-8
    zeros = enqueue(fast, Actor.system(), "test_scripted", value={"zeros": [0] * 500})  # 1011 bytes compact
    assert drain(fast.unit_of_work, "worker-1", 60) == 2
    for job in (euros, zeros):
        if stored(session, job.id).status == JobStatus.SUCCEEDED:
            kept = session.scalar(select(func.length(sa.cast(Job.result, sa.Text))).where(Job.id == job.id))
            assert kept is not None
            assert kept <= 1024, (job.parameters, kept)
        else:
            assert stored(session, job.id).failure_reason == RESULT_TOO_LARGE


def test_a_real_export_over_the_limit_fails(fast: Container, make_user, make_api_key, session: Session) -> None:
    user = make_user()
    for _ in range(5):
        make_api_key(user)
    job = enqueue(fast, actor_of(user), "user_export")
    drain(fast.unit_of_work, "worker-1", 60)
    assert (stored(session, job.id).status, stored(session, job.id).failure_reason) == (
        JobStatus.FAILED,
        "result too large",
    )


def test_a_result_is_read_only_once_succeeded(container: Container, make_user) -> None:
    actor = actor_of(make_user())
    job = enqueue(container, actor, "user_export")
    for status in ("queued", "running"):
        with container.unit_of_work(actor) as uow, pytest.raises(ConflictError, match="has not succeeded") as refused:
            uow.service(JobService).result(job.id)
        assert refused.value.extra["reason"] == status
        if status == "queued":
            claim(container, "worker-1")
    run_job(container.unit_of_work, job.id, "worker-1")
    with container.unit_of_work(actor) as uow:
        assert uow.service(JobService).result(job.id)["kind"] == "user_export"


# -- exports -------------------------------------------------------------------------------------


def test_a_user_export_holds_only_the_users_own_rows_and_no_secret(
    container: Container, make_user, make_api_key, make_organization, make_membership, make_project, session: Session
) -> None:
    user, other = make_user(first_name="Ada"), make_user(first_name="Other")
    acme, left, gone = make_organization(name="Acme"), make_organization(name="Left"), make_organization(name="Gone")
    make_membership(acme, user, "admin")
    make_membership(left, user, "member", deleted_at=utcnow())
    make_membership(gone, user, "member")
    session.execute(update(Organization).where(Organization.id == gone.id).values(deleted_at=utcnow()))
    make_membership(acme, other, "member")
    mine = make_project(acme, name="Mine", created_by=user.id)
    make_project(acme, name="Theirs", created_by=other.id)
    make_project(left, name="Before I left", created_by=user.id)
    make_project(gone, name="In a deleted organization", created_by=user.id)
    make_api_key(user)
    make_api_key(user, organization=acme)
    make_api_key(other)
    session.commit()

    job = enqueue(container, actor_of(user), "user_export")
    assert drain(container.unit_of_work, "worker-1", 60) == 1
    with container.unit_of_work(actor_of(user)) as uow:
        document = uow.service(JobService).result(job.id)

    assert document["kind"] == "user_export"
    assert (document["user"]["id"], document["user"]["first_name"]) == (str(user.id), "Ada")
    my_keys = session.scalars(select(APIKey).where(APIKey.user_id == user.id)).all()
    assert {key["id"] for key in document["api_keys"]} == {str(key.id) for key in my_keys}
    assert {key["organization_id"] for key in document["api_keys"]} == {None, str(acme.id)}
    text = json.dumps(document)
    for key in session.scalars(select(APIKey)):
        assert key.key_hash not in text
    assert "key_hash" not in text
    assert "secret_check" not in text
    assert document["memberships"] == [
        {"organization_id": str(acme.id), "clerk_id": acme.clerk_id, "name": "Acme", "role": "admin"}
    ]
    assert [project["id"] for project in document["projects"]] == [str(mine.id)]
    assert str(other.id) not in text


def test_an_organization_export_holds_the_organization_its_members_and_projects(
    container: Container, make_user, make_organization, make_membership, make_project, session: Session
) -> None:
    acme, globex = make_organization(name="Acme"), make_organization(name="Globex")
    admin, member, former = make_user(), make_user(first_name="Bea"), make_user()
    make_membership(acme, admin, "admin")
    make_membership(acme, member, "member")
    make_membership(acme, former, "member", deleted_at=utcnow())
    make_membership(globex, member, "admin")
    ours = [make_project(acme, name=name) for name in ("one", "two")]
    make_project(globex, name="theirs")

    job = enqueue(container, member_actor(admin, acme, "admin"), "organization_export", organization_id=str(acme.id))
    drain(container.unit_of_work, "worker-1", 60)
    with container.unit_of_work(member_actor(admin, acme, "admin")) as uow:
        document = uow.service(JobService).result(job.id)
    assert (document["kind"], document["organization"]["id"]) == ("organization_export", str(acme.id))
    assert {(m["user_id"], m["role"]) for m in document["members"]} == {
        (str(admin.id), "admin"),
        (str(member.id), "member"),
    }
    assert [project["id"] for project in document["projects"]] == [str(project.id) for project in ours]
    assert "Globex" not in json.dumps(document)


def test_an_organization_export_fails_when_its_requester_is_no_longer_an_admin(
    container: Container, make_user, make_organization, make_membership, session: Session
) -> None:
    acme = make_organization()
    admin = make_user()
    make_membership(acme, admin, "admin")
    job = enqueue(container, member_actor(admin, acme, "admin"), "organization_export", organization_id=str(acme.id))
    session.execute(update(Membership).where(Membership.user_id == admin.id).values(role="member"))
    session.commit()
    drain(container.unit_of_work, "worker-1", 60)
    failed = stored(session, job.id)
    assert (failed.status, failed.failure_reason) == (
        JobStatus.FAILED,
        "the user who asked is no longer an admin of the organization",
    )


def test_an_export_of_a_user_deleted_since_fails(container: Container, make_user, session: Session) -> None:
    user = make_user()
    job = enqueue(container, actor_of(user), "user_export")
    session.execute(update(User).where(User.id == user.id).values(deleted_at=utcnow(), is_active=False))
    session.commit()
    drain(container.unit_of_work, "worker-1", 60)
    assert stored(session, job.id).failure_reason == "the user who asked for this export no longer exists"


# -- retention -----------------------------------------------------------------------------------


def test_purge_deletes_jobs_finished_before_then_in_batches(container: Container, session: Session) -> None:
    jobs = [enqueue(container, Actor.system()) for _ in range(5)]
    drain(container.unit_of_work, "worker-1", 60)  # all five succeed
    old, recent = utcnow() - timedelta(days=10), utcnow()
    session.execute(update(Job).where(Job.id.in_([j.id for j in jobs[:3]])).values(finished_at=old))
    session.commit()
    failed_long_ago = enqueue(container, Actor.system(), "test_scripted", failures=["domain"])
    drain(container.unit_of_work, "worker-1", 60)
    session.execute(update(Job).where(Job.id == failed_long_ago.id).values(finished_at=old))
    session.commit()
    unfinished = [enqueue(container, Actor.system()) for _ in range(2)]  # one queued, one running
    session.execute(update(Job).where(Job.id.in_([j.id for j in unfinished])).values(created_at=old))
    session.commit()
    claim(container, "worker-1")

    before = recent - timedelta(days=7)
    with container.unit_of_work(Actor.system()) as uow:
        assert uow.service(JobService).purge_finished(before, limit=3) == 3
    with container.unit_of_work(Actor.system()) as uow:
        assert uow.service(JobService).purge_finished(before, limit=3) == 1
        assert uow.service(JobService).purge_finished(before, limit=3) == 0
    left = set(session.scalars(select(Job.id)))
    assert left == {jobs[3].id, jobs[4].id, *(j.id for j in unfinished)}
    with container.unit_of_work(Actor.anonymous()) as uow, pytest.raises(PermissionDeniedError):
        uow.service(JobService).purge_finished(before, limit=3)


def test_a_purged_user_leaves_its_jobs_to_the_admins(container: Container, make_user, session: Session) -> None:
    user = make_user()
    job = enqueue(container, actor_of(user), "user_export")
    session.execute(update(Job).where(Job.id == job.id).values(status=JobStatus.FAILED, finished_at=utcnow()))
    session.delete(session.get(User, user.id))
    session.commit()
    assert stored(session, job.id).requested_by is None  # ON DELETE SET NULL
    assert visible_ids(container, Actor.system()) == {job.id}


def test_the_readmes_job_kind_runs_as_written(container: Container, make_organization, make_project) -> None:
    """README's "Adding a kind": its handler and registry entry, run through a real drain."""
    section = (PROJECT_ROOT / "README.md").read_text().split("## Background jobs", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    if job_kinds.get("project_count") is None:  # once per process (the test runs on each database)
        names = {"Any": Any, "UnitOfWork": UnitOfWork, "Job": Job, "job_kinds": job_kinds}
        names |= {
            "select": select,
            "func": func,
            "col": col,
            "Project": Project,
            "ProjectPermission": ProjectPermission,
        }
        exec(code, names)  # noqa: S102 (the README's own code)
    acme = make_organization()
    for name in ("one", "two"):
        make_project(acme, name=name)
    make_project(make_organization(), name="another organization's")
    job = enqueue(container, Actor.system().in_organization(acme.id, None), "project_count")
    assert drain(container.unit_of_work, "worker-1", 60) == 1
    with container.unit_of_work(Actor.system()) as uow:
        assert uow.service(JobService).result(job.id) == {"projects": 2}
