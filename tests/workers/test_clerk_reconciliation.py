"""clerk-reconciliation, its users: the Backend API client against a local HTTP server that speaks
Clerk's list-users shape (tests/workers/clerk_backend_fake.py), and the flow run for real by Prefect
against SQLite and PostgreSQL. Organizations and memberships: test_clerk_organization_reconciliation.py."""

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from prefect.client.schemas.objects import StateType
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Role
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.users.clerk_user_reconciliation import ClerkUserReconciliation
from app.domains.users.models import APIKey, User
from app.infrastructure.clerk_backend_api import Backoff, ClerkAPI, ClerkAPIError, retry_after_seconds
from app.workers.flows import FLOWS
from app.workers.flows.clerk_reconciliation import clerk_reconciliation
from app.workers.main import main
from tests.clerk_helpers import SAMPLES
from tests.conftest import actor_of
from tests.workers.clerk_backend_fake import SECRET_KEY, T0, FakeClerk, clerk_user
from tests.workers.conftest import counts_artifact


def client(fake: FakeClerk, asked: list[float], **options: Any) -> ClerkAPI:
    return ClerkAPI(SECRET_KEY, fake.url, backoff=Backoff(base_delay=0.25, sleep=asked.append), **options)


def by_clerk_id(session: Session, clerk_id: str) -> User | None:
    session.expire_all()
    return session.scalar(select(User).where(User.clerk_id == clerk_id))


def counts(**nonzero: int) -> dict[str, Any]:
    """The flow's counts: these for users, and none for organizations and memberships (Clerk has none)."""
    nothing = {"created": 0, "updated": 0, "unchanged": 0, "ignored": 0, "failed": 0}
    users = {**nothing, "tombstoned": 0, **nonzero}
    return {**users, "organizations": {**nothing, "tombstoned": 0}, "memberships": {**nothing, "ended": 0}}


# -- the client ------------------------------------------------------------------------------------


def test_the_client_pages_until_a_short_page(fake_clerk: FakeClerk) -> None:
    fake_clerk.users = [clerk_user(n) for n in range(7)]
    with client(fake_clerk, []) as clerk:
        pages = list(clerk.user_pages(limit=3))
    assert [[user["id"] for user in page] for page in pages] == [
        ["user_000", "user_001", "user_002"],
        ["user_003", "user_004", "user_005"],
        ["user_006"],
    ]
    assert fake_clerk.requests == [
        {"limit": ["3"], "offset": [str(offset)], "order_by": ["+created_at"]} for offset in (0, 3, 6)
    ]
    fake_clerk.users = fake_clerk.users[:6]  # an exact multiple: the empty page ends the listing
    with client(fake_clerk, []) as clerk:
        assert [len(page) for page in clerk.user_pages(limit=3)] == [3, 3, 0]


def test_the_client_honours_429_and_retry_after_with_a_cap(fake_clerk: FakeClerk) -> None:
    fake_clerk.users = [clerk_user(1)]
    fake_clerk.script = [(429, {"Retry-After": "2"}), (429, {"Retry-After": "3600"}), (429, {})]
    asked: list[float] = []
    with client(fake_clerk, asked) as clerk:
        assert [user["id"] for user in clerk.list_users(10)] == ["user_001"]
    assert asked == [2.0, 60.0, 1.0]  # as told, capped at 60 s, else the backoff (0.25 * 2**2)
    assert len(fake_clerk.requests) == 4


def test_the_client_retries_server_errors_with_exponential_backoff(fake_clerk: FakeClerk) -> None:
    fake_clerk.users = [clerk_user(1)]
    fake_clerk.script = [(500, {}), (502, {})]
    asked: list[float] = []
    with client(fake_clerk, asked) as clerk:
        assert len(clerk.list_users(10)) == 1
    assert asked == [0.25, 0.5]


def test_a_request_that_keeps_failing_raises_after_bounded_attempts(fake_clerk: FakeClerk) -> None:
    fake_clerk.script = [(503, {})] * 10
    asked: list[float] = []
    with client(fake_clerk, asked) as clerk, pytest.raises(ClerkAPIError, match="failed 5 times") as error:
        clerk.list_users(10)
    assert error.value.status == 503
    assert "scripted 503" in str(error.value)  # Clerk's own message is kept
    assert (len(fake_clerk.requests), asked) == (5, [0.25, 0.5, 1.0, 2.0])


def test_a_refusal_is_not_retried_and_the_key_is_checked(fake_clerk: FakeClerk) -> None:
    asked: list[float] = []
    clerk = ClerkAPI("sk_test_wrong", fake_clerk.url, backoff=Backoff(sleep=asked.append))
    with clerk, pytest.raises(ClerkAPIError, match="refused: HTTP 401") as error:
        clerk.list_users(10)
    assert (error.value.status, asked) == (401, [])
    assert "sk_test_wrong" not in str(error.value)


def test_timeouts_and_connection_errors_are_retried(fake_clerk: FakeClerk) -> None:
    fake_clerk.users = [clerk_user(1)]
    fake_clerk.delay = 0.1  # the first answer comes after the client gave up
    asked: list[float] = []
    with client(fake_clerk, asked, timeout=0.02) as clerk:
        assert len(clerk.list_users(10)) == 1
    assert asked == [0.25]

    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    asked.clear()
    with (
        ClerkAPI(SECRET_KEY, f"http://127.0.0.1:{port}/v1", backoff=Backoff(attempts=3, sleep=asked.append)) as clerk,
        pytest.raises(ClerkAPIError, match="failed 3 times, last with ConnectError"),
    ):
        clerk.list_users(10)
    assert len(asked) == 2


def test_users_are_looked_up_by_id_a_hundred_at_a_time(fake_clerk: FakeClerk) -> None:
    fake_clerk.users = [clerk_user(n) for n in range(0, 300, 2)]
    wanted = [f"user_{n:03d}" for n in range(150)]
    with client(fake_clerk, []) as clerk:
        found = clerk.users_with_ids(wanted)
    assert sorted(user["id"] for user in found) == [f"user_{n:03d}" for n in range(0, 150, 2)]
    assert [len(query["user_id"]) for query in fake_clerk.requests] == [100, 50]


def test_a_response_of_another_shape_is_an_error(fake_clerk: FakeClerk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeClerk, "answer", lambda *_: (200, {}, {"data": [], "total_count": 0}))
    with client(fake_clerk, []) as clerk, pytest.raises(ClerkAPIError, match="expected a JSON array"):
        clerk.list_users(10)


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("0.5") == 0.5
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after_seconds(later) <= 31
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# -- the rules -------------------------------------------------------------------------------------


def test_a_member_can_neither_reconcile_nor_tombstone(
    container: Container, session: Session, make_user: Callable[..., User]
) -> None:
    member = make_user(role=Role.MEMBER)
    make_user(clerk_id="user_victim")
    with container.unit_of_work(actor_of(member)) as uow:
        sync = uow.service(ClerkUserReconciliation)
        for attempt in (
            lambda: sync.reconcile_user(clerk_user(1)),
            lambda: sync.absent_from(set(), 10),
            lambda: sync.tombstone_deleted(["user_victim"]),
        ):
            with pytest.raises(PermissionDeniedError):
                attempt()
    assert by_clerk_id(session, "user_001") is None
    assert by_clerk_id(session, "user_victim").deleted_at is None


def test_the_flow_is_registered_hourly_and_flow_schedules_moves_it() -> None:
    registered = FLOWS["clerk-reconciliation"]
    assert registered.flow is clerk_reconciliation
    assert FLOWS.schedules({})["clerk-reconciliation"] == "0 * * * *"
    assert FLOWS.schedules({"clerk-reconciliation": "15 * * * *"})["clerk-reconciliation"] == "15 * * * *"


# -- the flow, run by Prefect ---------------------------------------------------------------------


def test_skipped_without_a_secret_key_and_not_green(worker: Container, fake_clerk: FakeClerk) -> None:
    """A missing secret needs someone: the run ends Failed, named Skipped, with the reason."""
    assert worker.settings.clerk_secret_key is None
    state = clerk_reconciliation(return_state=True)
    assert (state.type, state.name, state.message) == (
        StateType.FAILED,
        "Skipped",
        "clerk-reconciliation skipped: CLERK_SECRET_KEY is not set",
    )
    assert counts_artifact(state) == {"skipped": "CLERK_SECRET_KEY is not set"}
    assert fake_clerk.calls == []
    with pytest.raises(SystemExit, match=r"^clerk-reconciliation skipped: CLERK_SECRET_KEY is not set$"):
        main(["run", "clerk-reconciliation"])  # `task flow -- clerk-reconciliation`: exit 1, one line


def test_pages_are_applied_then_a_second_run_changes_nothing(
    reconcile: Callable[..., dict], fake_clerk: FakeClerk, waits: list[float], session: Session
) -> None:
    fake_clerk.users = [clerk_user(n, first_name=f"First{n}", last_name="Clerk") for n in range(7)]
    fake_clerk.script = [(429, {"Retry-After": "2"}), (500, {})]  # the first page is asked for 3 times

    assert reconcile(page_size=3) == counts(created=7)
    assert fake_clerk.offsets() == [0, 0, 0, 3, 6]
    assert waits == [2.0, 0.5]
    user = by_clerk_id(session, "user_004")
    assert (user.email, user.first_name, user.last_name) == ("u4@example.com", "First4", "Clerk")
    assert user.created_at == datetime.fromtimestamp((T0 + 4000) / 1000, UTC)  # Clerk's, not ours
    assert user.clerk_updated_at == user.created_at
    written_at = user.updated_at

    assert reconcile(page_size=3) == counts(unchanged=7)
    assert by_clerk_id(session, "user_004").updated_at == written_at  # not even rewritten

    fake_clerk.users[4] = clerk_user(4, updated=500, email="New4@Example.com", first_name="Renamed")
    fake_clerk.users[5] = clerk_user(5, updated=-500, first_name="Older")  # older than stored: ignored
    assert reconcile(page_size=3) == counts(updated=1, unchanged=6)
    user = by_clerk_id(session, "user_004")
    assert (user.email, user.first_name) == ("new4@example.com", "Renamed")
    assert by_clerk_id(session, "user_005").first_name == "First5"


def test_users_gone_from_clerk_are_tombstoned_and_tombstones_stay(
    reconcile: Callable[..., dict],
    fake_clerk: FakeClerk,
    session: Session,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
) -> None:
    fake_clerk.users = [clerk_user(n) for n in range(4)]
    gone = make_user(clerk_id="user_gone")
    make_api_key(gone), make_api_key(gone)
    deleted_here = make_user(clerk_id="user_002", email=None, is_active=False, deleted_at=utcnow())
    fake_clerk.users.append(clerk_user(9))
    fake_clerk.hidden = {"user_009"}  # skipped by the listing, as a deletion during paging would do
    make_user(clerk_id="user_009", email="u9@example.com")
    local_only = make_user()  # not linked to Clerk: not Clerk's to judge

    assert reconcile(page_size=2) == counts(created=3, ignored=1, tombstoned=1)

    user = by_clerk_id(session, "user_gone")
    assert user.deleted_at is not None
    assert (user.email, user.first_name, user.is_active) == (None, None, False)
    keys = session.scalars(select(APIKey).where(APIKey.user_id == gone.id)).all()
    assert len(keys) == 2
    assert all(key.revoked_at is not None for key in keys)
    still_deleted = by_clerk_id(session, "user_002")
    assert (still_deleted.id, still_deleted.email, still_deleted.is_active) == (deleted_here.id, None, False)
    assert still_deleted.deleted_at is not None
    assert by_clerk_id(session, "user_009").deleted_at is None  # confirmed by id: it still exists
    assert fake_clerk.requests[-1]["user_id"] == ["user_009", "user_gone"]
    assert session.get(User, local_only.id).deleted_at is None


def test_a_user_that_cannot_be_applied_fails_alone(
    reconcile: Callable[..., dict], fake_clerk: FakeClerk, session: Session, make_user: Callable[..., User]
) -> None:
    make_user(email="taken@example.com")
    make_user(clerk_id="user_001", email="old1@example.com")
    fake_clerk.users = [
        clerk_user(0),
        clerk_user(1, updated=100, email="Taken@example.com"),  # an e-mail another user holds
        clerk_user(2),
        {"id": "user_bad", "first_name": "x" * 500},  # not storable
        json.loads((SAMPLES / "user_created_realistic.json").read_text())["data"],  # a full User object
    ]
    state = reconcile(page_size=5, return_state=True)
    assert state.is_failed()  # not green: two users need someone's attention (see the log)
    assert state.message == (
        "clerk-reconciliation: failed: 2 (all else ran: see the clerk-reconciliation-counts artifact)"
    )
    assert counts_artifact(state) == counts(created=3, failed=2)
    assert {u.clerk_id for u in session.scalars(select(User).where(User.clerk_id.is_not(None)))} == {
        "user_000",
        "user_001",
        "user_002",
        "user_2xYzAbCdEfGhIjKlMnOpQrStUvW",
    }
    assert by_clerk_id(session, "user_2xYzAbCdEfGhIjKlMnOpQrStUvW").email == "ada@example.com"
    user = by_clerk_id(session, "user_001")
    assert (user.email, user.deleted_at) == ("old1@example.com", None)  # unchanged, and not tombstoned


def test_a_listing_that_keeps_failing_tombstones_nothing(
    reconcile: Callable[..., dict],
    fake_clerk: FakeClerk,
    waits: list[float],
    session: Session,
    make_user: Callable[..., User],
) -> None:
    fake_clerk.users = [clerk_user(n) for n in range(7)]
    fake_clerk.fail_from_offset = 3
    make_user(clerk_id="user_gone")

    with pytest.raises(ClerkAPIError, match="failed 5 times, last with HTTP 503"):
        reconcile(page_size=3)

    assert fake_clerk.offsets() == [0, 3, 3, 3, 3, 3]
    assert len(waits) == 4
    assert by_clerk_id(session, "user_002") is not None  # the page before the failure was applied
    assert by_clerk_id(session, "user_003") is None
    assert by_clerk_id(session, "user_gone").deleted_at is None
    assert not any("user_id" in query for query in fake_clerk.requests)
