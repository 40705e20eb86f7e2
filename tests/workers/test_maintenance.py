"""The maintenance and user-report flows, run for real by Prefect against SQLite and PostgreSQL: what they
change, and how a run ends when a step hits a lock or fails."""

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from prefect.exceptions import ParameterTypeError
from sqlalchemy import func, make_url, select, text
from sqlalchemy.orm import Session

from app.bootstrap import Container, bootstrap
from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.idempotency.models import IdempotencyKey
from app.domains.jobs.models import Job, JobStatus
from app.domains.organizations.models import Membership, Organization
from app.domains.organizations.service import OrganizationService
from app.domains.projects.models import Project, ProjectStatus
from app.domains.projects.service import ProjectService
from app.domains.users.models import APIKey, User
from app.domains.users.service import APIKeyService, UserService
from app.domains.webhooks.models import WebhookEvent
from app.domains.webhooks.service import WebhookEventService
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from app.workers.flows.maintenance import maintenance
from app.workers.flows.user_report import user_report
from app.workers.runtime import use_container
from app.workers.tasks.maintenance import archive_stale_projects
from tests.conftest import actor_of
from tests.helpers import backend_name, settings_for
from tests.workers.conftest import counts_artifact, task_runs


def _count(session: Session, statement) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(statement.subquery()))


def test_maintenance_revokes_deletes_and_purges_in_batches(
    worker: Container, session: Session, make_user: Callable[..., User], make_api_key: Callable[..., str]
) -> None:
    now = utcnow()
    owner = make_user()
    for _ in range(7):
        make_api_key(owner, expires_at=now + timedelta(hours=1))
    session.execute(APIKey.__table__.update().values(expires_at=now - timedelta(minutes=1)))  # they expired
    session.commit()
    make_api_key(owner)  # never expires
    gone, recent = make_user(), make_user()
    gone_id, recent_id = gone.id, recent.id
    make_api_key(gone)
    with worker.unit_of_work(Actor.system()) as uow:
        users = uow.service(UserService)
        users.tombstone(users.get(gone.id))
        users.tombstone(users.get(recent.id))
        events = uow.service(WebhookEventService)
        for number in range(5):
            events.record_once("clerk", f"msg_old_{number}", "user.updated", None, {})
        events.record_once("clerk", "msg_new", "user.updated", None, {})
    session.execute(User.__table__.update().where(User.id == gone.id).values(deleted_at=now - timedelta(days=8)))
    session.execute(
        WebhookEvent.__table__.update()
        .where(WebhookEvent.svix_id.like("msg_old_%"))
        .values(received_at=now - timedelta(days=31))
    )
    session.commit()
    old, recent_finish = now - timedelta(days=8), now - timedelta(days=1)
    kept_jobs = [
        Job(kind="user_export", status=JobStatus.SUCCEEDED, finished_at=recent_finish),
        Job(kind="user_export"),
    ]
    session.add_all(
        [
            *(Job(kind="user_export", status=JobStatus.SUCCEEDED, finished_at=old, result={}) for _ in range(3)),
            Job(kind="user_export", status=JobStatus.FAILED, finished_at=old, failure_reason="x"),
            *kept_jobs,  # finished within the retention; queued (never finished)
        ]
    )
    session.commit()
    kept_job_ids = {job.id for job in kept_jobs}
    expiries = [now - timedelta(minutes=1)] * 4 + [now + timedelta(hours=1)]  # 4 expired, 1 live
    keys = [
        IdempotencyKey(user_id=owner.id, key_hash=f"{n:064x}", fingerprint="f", expires_at=at)
        for n, at in enumerate(expiries)
    ]
    session.add_all(keys)
    session.commit()
    live_key_id = keys[-1].id

    counts = maintenance(batch_size=3)

    assert counts == {
        "api_keys_revoked": 7,
        "webhook_events_deleted": 5,
        "tombstoned_users_removed": 1,
        "their_api_keys_removed": 1,
        "tombstoned_organizations_removed": 0,
        "projects_archived": 0,
        "finished_jobs_deleted": 4,
        "idempotency_keys_deleted": 4,
    }
    assert set(session.scalars(select(Job.id))) == kept_job_ids
    assert set(session.scalars(select(IdempotencyKey.id))) == {live_key_id}
    assert _count(session, select(APIKey).where(APIKey.revoked_at.is_(None))) == 1  # the one without expiry
    assert _count(session, select(WebhookEvent)) == 1
    assert session.get(User, gone_id) is None
    assert session.get(User, recent_id) is not None  # tombstoned, but within the retention
    assert maintenance(batch_size=3) == dict.fromkeys(counts, 0)  # nothing left to do


def _days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def _touched(session: Session, projects: list[Project], days: float) -> list[UUID]:
    """The projects last updated that many days ago (a factory's row is updated now); their ids."""
    ids = [project.id for project in projects]
    session.execute(Project.__table__.update().where(Project.id.in_(ids)).values(updated_at=_days_ago(days)))
    session.commit()
    return ids


def _statuses(session: Session, ids: list[UUID]) -> list[str]:
    session.expire_all()
    return sorted(session.scalars(select(Project.status).where(Project.id.in_(ids))))


def test_maintenance_archives_only_stale_drafts_of_live_organizations(
    worker: Container, session: Session, make_organization: Callable[..., Organization], make_project: Callable
) -> None:
    """PROJECT_DRAFT_ARCHIVE_DAYS (30): drafts not updated for longer, of live organizations."""
    acme, initech, deleted = make_organization(), make_organization(), make_organization()
    stale = _touched(session, [make_project(acme) for _ in range(5)] + [make_project(initech) for _ in range(2)], 31)
    recent = _touched(session, [make_project(acme), make_project(initech)], 29)
    today = [make_project(acme).id]
    others = _touched(
        session,
        [make_project(acme, status=ProjectStatus.ACTIVE), make_project(initech, status=ProjectStatus.ARCHIVED)],
        400,
    )
    of_deleted = _touched(session, [make_project(deleted) for _ in range(2)], 400)
    session.execute(Organization.__table__.update().where(Organization.id == deleted.id).values(deleted_at=utcnow()))
    session.commit()

    counts = maintenance(batch_size=3)  # 7 stale drafts: batches of 3, 3 and 1

    assert counts["projects_archived"] == 7
    assert _statuses(session, stale) == ["archived"] * 7
    assert _statuses(session, recent + today) == ["draft"] * 3
    assert _statuses(session, others) == ["active", "archived"]
    assert _statuses(session, of_deleted) == ["draft"] * 2  # unreachable until purged, not changed
    assert session.scalar(select(func.min(Project.updated_at)).where(Project.id.in_(others))) < _days_ago(399)
    assert maintenance(batch_size=3)["projects_archived"] == 0


@pytest.mark.parametrize(("drafts", "batch_size"), [(6, 3), (6, 1), (6, 6), (6, 7), (0, 2)])
def test_archiving_loops_until_a_batch_comes_back_short(
    worker: Container,
    session: Session,
    make_organization: Callable[..., Organization],
    make_project: Callable[..., Project],
    drafts: int,
    batch_size: int,
) -> None:
    organization = make_organization()
    ids = _touched(session, [make_project(organization) for _ in range(drafts)], 11)
    _touched(session, [make_project(organization)], 9)
    assert archive_stale_projects(10, batch_size) == drafts  # the task, with another number of days
    assert _statuses(session, ids) == ["archived"] * drafts
    assert _count(session, select(Project).where(Project.status == ProjectStatus.DRAFT)) == 1


def test_maintenance_removes_old_tombstoned_organizations_with_their_rows(
    worker: Container,
    session: Session,
    make_user: Callable[..., User],
    make_organization: Callable[..., Organization],
    make_membership: Callable[..., None],
    make_project: Callable[..., Project],
    make_api_key: Callable[..., str],
) -> None:
    """TOMBSTONE_RETENTION_DAYS (7), the users': the organization goes with its projects,
    memberships and the keys bound to it; its members stay, with their other keys."""
    member = make_user()
    make_api_key(member)  # a personal key: no organization

    def organization_with_rows(deleted_days_ago: float | None) -> Organization:
        organization = make_organization()
        make_membership(organization, member, "admin")
        make_project(organization, status=ProjectStatus.ACTIVE)
        make_project(organization)
        make_api_key(member, organization=organization)
        if deleted_days_ago is not None:
            session.execute(
                Organization.__table__.update()
                .where(Organization.id == organization.id)
                .values(deleted_at=_days_ago(deleted_days_ago))
            )
            session.commit()
        return organization

    for days in (8, 8, 30, 365):
        organization_with_rows(days)
    recent, live = organization_with_rows(6), organization_with_rows(None)
    kept = [recent.id, live.id]

    counts = maintenance(batch_size=3)  # 4 old tombstones: batches of 3 and 1

    assert counts["tombstoned_organizations_removed"] == 4
    assert counts["projects_archived"] == 0  # the live drafts were updated now
    session.expire_all()
    assert sorted(session.scalars(select(Organization.id))) == sorted(kept)
    for table in (Project, Membership, APIKey):
        owners = set(session.scalars(select(table.organization_id)))
        assert owners <= {*kept, None}, table.__tablename__
    assert _count(session, select(Project)) == 4
    assert _count(session, select(Membership)) == 2
    assert _count(session, select(APIKey)) == 3  # the personal key and the two bound to kept ones
    assert session.get(User, member.id) is not None
    assert maintenance(batch_size=3)["tombstoned_organizations_removed"] == 0


def test_a_member_could_not_do_what_the_flow_does(container: Container, make_user: Callable[..., User]) -> None:
    member = make_user(role=Role.MEMBER)
    with container.unit_of_work(actor_of(member)) as uow:
        for attempt in (
            lambda: uow.service(APIKeyService).revoke_expired(utcnow(), 10),
            lambda: uow.service(WebhookEventService).delete_received_before(utcnow(), 10),
            lambda: uow.service(UserService).purge_tombstones(utcnow(), 10),
            lambda: uow.service(OrganizationService).purge_tombstones(utcnow(), 10, owned_tables=[Project]),
            lambda: uow.service(ProjectService).archive_stale_drafts(utcnow(), 10),
        ):
            with pytest.raises(PermissionDeniedError):
                attempt()


def test_user_report_counts_active_users_by_role_and_new_ones(
    worker: Container, make_user: Callable[..., User]
) -> None:
    make_user(role=Role.ADMIN)
    make_user(), make_user()
    make_user(created_at=utcnow() - timedelta(days=3))
    make_user(is_active=False)
    assert user_report(since_hours=24) == {"active_admins": 1, "active_members": 3, "new": 4}


@pytest.mark.parametrize("batch_size", [0, -1, 100_001])
def test_a_batch_size_out_of_range_is_refused_before_any_work(worker: Container, batch_size: int) -> None:
    """SQLite reads LIMIT -1 as "no limit": a batch that never comes back short would loop forever."""
    with pytest.raises(ParameterTypeError):
        maintenance(batch_size=batch_size)


# -- when something goes wrong: retries, a step that fails alone, the counts artifact -------------------


@pytest.fixture
def impatient(worker: Container) -> Iterator[Container]:
    """The flows on the test database with a 1 s statement timeout (SQLite: busy timeout)."""
    container = bootstrap(settings_for(worker.settings.database_url, database_statement_timeout_seconds=1))
    use_container(container)
    yield container
    use_container(worker)
    container.dispose()


@contextmanager
def webhook_events_locked(settings: Settings, database: Database) -> Iterator[Callable[[], None]]:
    """Another transaction holding a lock that keeps the flow from deleting webhook events (on SQLite,
    from writing anything); yields the function that ends it."""
    if backend_name(settings) == "sqlite":
        other = sqlite3.connect(make_url(settings.database_url).database or "", check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = other.close  # rolls back; closing twice is harmless
    else:
        connection = database.engine.connect()
        connection.begin()
        connection.execute(text("LOCK TABLE webhook_events IN EXCLUSIVE MODE"))
        release = connection.close
    try:
        yield release
    finally:
        release()


def _seed_work(session: Session, make_user: Callable[..., User], make_api_key: Callable[..., str]) -> None:
    """Two expired keys, one user tombstoned 8 days ago (with a key), two webhook deliveries 31 days old."""
    owner, gone = make_user(), make_user()
    make_api_key(owner), make_api_key(owner), make_api_key(gone)
    now = utcnow()
    session.execute(APIKey.__table__.update().where(APIKey.user_id == owner.id).values(expires_at=now))
    session.execute(User.__table__.update().where(User.id == gone.id).values(deleted_at=now - timedelta(days=8)))
    for number in range(2):
        session.add(
            WebhookEvent(
                source="clerk", svix_id=f"msg_old_{number}", type="user.updated", received_at=now - timedelta(days=31)
            )
        )
    session.commit()


def test_a_step_that_hits_a_lock_is_retried_and_the_run_completes(
    impatient: Container,
    quick_retries: None,
    settings: Settings,
    database: Database,
    session: Session,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
) -> None:
    """The issue's day: a lock held past the statement timeout. Transient: the step runs again."""
    _seed_work(session, make_user, make_api_key)
    with webhook_events_locked(settings, database) as release:
        timer = threading.Timer(2.5, release)  # past the 1 s timeout of a first attempt
        timer.start()
        started = time.monotonic()
        state = maintenance(batch_size=10, return_state=True)
        elapsed = time.monotonic() - started
        timer.join()

    assert state.is_completed(), state.message
    assert state.result() == {
        "api_keys_revoked": 2,
        "webhook_events_deleted": 2,
        "tombstoned_users_removed": 1,
        "their_api_keys_removed": 1,
        "tombstoned_organizations_removed": 0,
        "projects_archived": 0,
        "finished_jobs_deleted": 0,
        "idempotency_keys_deleted": 0,
    }
    attempts = {name: run.run_count for name, run in task_runs(state).items()}
    print(f"\nlock released after 2.5 s; run completed in {elapsed:.1f} s; attempts: {attempts}")
    assert elapsed > 2.5
    # PostgreSQL: the table lock holds up one step; SQLite: the database lock, the first step that writes
    retried = "delete_old_webhook_events" if backend_name(settings) == "postgresql" else "remove_old_tombstones"
    assert attempts[retried] >= 2
    assert counts_artifact(state) == state.result()


def test_a_step_that_fails_fails_alone_and_the_run_ends_failed_naming_it(
    worker: Container,
    quick_retries: None,
    database: Database,
    session: Session,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
    make_organization: Callable[..., Organization],
    make_project: Callable[..., Project],
) -> None:
    """A table the step needs is missing (a bad deploy, say): not transient, so not retried; the steps
    after it still run, and the run is Failed, not a green run with a warning in its log."""
    _seed_work(session, make_user, make_api_key)
    stale = _touched(session, [make_project(make_organization())], 31)
    with database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE webhook_events RENAME TO webhook_events_elsewhere"))
    try:
        state = maintenance(batch_size=10, return_state=True)
    finally:
        with database.engine.begin() as connection:
            connection.execute(text("ALTER TABLE webhook_events_elsewhere RENAME TO webhook_events"))

    assert state.is_failed()
    print(f"\n{state.message}")
    assert state.message
    assert state.message.startswith("maintenance: step delete_old_webhook_events failed (")
    assert state.message.endswith("(all else ran: see the maintenance-counts artifact)")
    runs = task_runs(state)
    assert runs["delete_old_webhook_events"].run_count == 1  # not transient: not run again
    assert {name for name, run in runs.items() if run.state and run.state.is_completed()} == {
        "remove_old_tombstones",
        "revoke_expired_api_keys",
        "remove-tombstoned-organizations",
        "archive-stale-projects",
        "delete_finished_jobs",
        "delete_expired_idempotency_keys",
    }
    published = counts_artifact(state)
    reason = published.pop("step delete_old_webhook_events failed")
    # The database's error in one line, without values (as the API logs one): the table is missing.
    assert reason in {"UndefinedTable (SQLSTATE 42P01)", "OperationalError: no such table: webhook_events"}
    assert reason in state.message
    assert published == {
        "api_keys_revoked": 2,
        "webhook_events_deleted": "(its step failed)",
        "tombstoned_users_removed": 1,
        "their_api_keys_removed": 1,
        "tombstoned_organizations_removed": 0,
        "projects_archived": 1,
        "finished_jobs_deleted": 0,
        "idempotency_keys_deleted": 0,
    }
    assert _statuses(session, stale) == ["archived"]  # the steps after the failed one ran
    assert _count(session, select(APIKey).where(APIKey.revoked_at.is_(None))) == 0


def test_every_run_publishes_its_counts(worker: Container, make_user: Callable[..., User]) -> None:
    make_user()
    state = user_report(since_hours=24, return_state=True)
    assert state.is_completed()
    assert counts_artifact(state) == state.result() == {"active_members": 1, "new": 1}
