"""The maintenance and user-report flows, run for real by Prefect against SQLite and PostgreSQL."""

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from prefect.exceptions import ParameterTypeError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.jobs.models import Job, JobStatus
from app.domains.organizations.models import Membership, Organization
from app.domains.organizations.service import OrganizationService
from app.domains.projects.models import Project, ProjectStatus
from app.domains.projects.service import ProjectService
from app.domains.users.models import APIKey, User
from app.domains.users.service import APIKeyService, UserService
from app.domains.webhooks.models import WebhookEvent
from app.domains.webhooks.service import WebhookEventService
from app.workers.flows.maintenance import maintenance
from app.workers.flows.user_report import user_report
from app.workers.tasks.maintenance import archive_stale_projects
from tests.conftest import actor_of


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

    counts = maintenance(batch_size=3)

    assert counts == {
        "api_keys_revoked": 7,
        "webhook_events_deleted": 5,
        "tombstoned_users_removed": 1,
        "their_api_keys_removed": 1,
        "tombstoned_organizations_removed": 0,
        "projects_archived": 0,
        "finished_jobs_deleted": 4,
    }
    assert set(session.scalars(select(Job.id))) == kept_job_ids
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
