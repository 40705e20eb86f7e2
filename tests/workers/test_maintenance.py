"""The maintenance and user-report flows, run for real by Prefect against SQLite and PostgreSQL."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from prefect.exceptions import ParameterTypeError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.users.models import APIKey, User
from app.domains.users.service import APIKeyService, UserService
from app.domains.webhooks.models import WebhookEvent
from app.domains.webhooks.service import WebhookEventService
from app.workers.flows.maintenance import maintenance
from app.workers.flows.user_report import user_report
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

    counts = maintenance(batch_size=3)

    assert counts == {
        "api_keys_revoked": 7,
        "webhook_events_deleted": 5,
        "tombstoned_users_removed": 1,
        "their_api_keys_removed": 1,
    }
    assert _count(session, select(APIKey).where(APIKey.revoked_at.is_(None))) == 1  # the one without expiry
    assert _count(session, select(WebhookEvent)) == 1
    assert session.get(User, gone_id) is None
    assert session.get(User, recent_id) is not None  # tombstoned, but within the retention
    assert maintenance(batch_size=3) == dict.fromkeys(counts, 0)  # nothing left to do


def test_a_member_could_not_do_what_the_flow_does(container: Container, make_user: Callable[..., User]) -> None:
    member = make_user(role=Role.MEMBER)
    with container.unit_of_work(actor_of(member)) as uow:
        for attempt in (
            lambda: uow.service(APIKeyService).revoke_expired(utcnow(), 10),
            lambda: uow.service(WebhookEventService).delete_received_before(utcnow(), 10),
            lambda: uow.service(UserService).purge_tombstones(utcnow(), 10),
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
