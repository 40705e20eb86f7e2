"""POST /webhooks/clerk: Svix signatures, every real sample, idempotency, ordering, tombstones."""

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.api.routes.webhooks import CLERK_WEBHOOK_MAX_BODY_BYTES
from app.domains.users.clerk_user_sync import ClerkUser
from app.domains.users.models import APIKey, User
from app.domains.webhooks.models import WebhookEvent
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from app.models import metadata
from tests.clerk_helpers import SAMPLES, WEBHOOK_SECRET, sign_bytes, svix_headers, user_event
from tests.helpers import recorded, settings_for

URL = "/webhooks/clerk"


@pytest.fixture
def hook_client(settings: Settings, database: Database) -> Iterator[TestClient]:
    app = create_app(settings_for(settings.database_url, clerk_webhook_signing_secret=WEBHOOK_SECRET))
    with TestClient(app) as client:
        yield client


def deliver(client: TestClient, event: dict | bytes | str, msg_id: str | None = None):
    body = event if isinstance(event, bytes | str) else json.dumps(event)
    return client.post(URL, content=body, headers={**svix_headers(body, msg_id), "content-type": "application/json"})


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def user_by_clerk_id(session: Session, clerk_id: str) -> User | None:
    session.expire_all()
    return session.scalar(select(User).where(User.clerk_id == clerk_id))


# -- size -------------------------------------------------------------------------------------


def test_the_largest_event_clerk_can_send_fits_under_the_body_bound(hook_client: TestClient) -> None:
    """Each of Clerk's three metadata fields holds at most 8 KB: all three full, and still accepted."""
    event = user_event("user.created", "user_full_metadata", 1_700_000_000_000, "full@example.com")
    for field in ("public_metadata", "private_metadata", "unsafe_metadata"):
        event["data"][field] = {"blob": "m" * 8_000}
    body = json.dumps(event)
    assert 24_000 < len(body) < CLERK_WEBHOOK_MAX_BODY_BYTES / 2
    assert deliver(hook_client, body).status_code == 200


def test_a_body_over_the_bound_is_413_before_its_signature_is_checked(hook_client: TestClient) -> None:
    body = json.dumps({"data": {"pad": "x" * CLERK_WEBHOOK_MAX_BODY_BYTES}, "type": "user.created"})
    response = deliver(hook_client, body)  # correctly signed: the size alone refuses it
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    assert response.json()["status"] == 413


# -- signatures -------------------------------------------------------------------------------


def test_every_sample_is_accepted_and_recorded(hook_client: TestClient, session: Session) -> None:
    names = sorted(path.name for path in SAMPLES.glob("*.json"))
    assert len(names) == 10
    for name in names:
        response = deliver(hook_client, sample(name))
        assert response.status_code == 200, (name, response.text)
        assert response.json()["status"] in {"processed", "ignored"}, (name, response.json())
    events = session.scalars(select(WebhookEvent)).all()
    assert len(events) == len(names)
    assert all(event.processed_at is not None and event.outcome is not None for event in events)
    outcomes = {event.type: event.outcome for event in events}
    assert outcomes["session.created"] == "ignored"  # no domain applies it
    assert outcomes["organization.created"] == outcomes["organization.deleted"] == "processed"
    # Delivered in name order, so after the deletion of its organization (the same org id): a
    # deletion is final.
    assert outcomes["organizationMembership.created"] == "ignored"


@pytest.mark.parametrize(
    "name", ["user_created.json", "user_created_catalog.json", "user_created_realistic.json", "user_updated.json"]
)
def test_user_samples_store_the_primary_email(hook_client: TestClient, session: Session, name: str) -> None:
    body = sample(name)
    data = json.loads(body)["data"]
    assert deliver(hook_client, body).json()["status"] == "processed"
    user = user_by_clerk_id(session, data["id"])
    primary = next(a["email_address"] for a in data["email_addresses"] if a["id"] == data["primary_email_address_id"])
    assert (user.email, user.first_name, user.last_name) == (primary.lower(), data["first_name"], data["last_name"])
    assert user.clerk_updated_at == datetime.fromtimestamp(data["updated_at"] / 1000, UTC)


def test_primary_email_id_without_a_matching_address_stores_none(hook_client: TestClient, session: Session) -> None:
    body = sample("user_created_catalog_2024.json")  # email_addresses is empty, the primary id is set
    data = json.loads(body)["data"]
    assert deliver(hook_client, body).json()["status"] == "processed"
    assert user_by_clerk_id(session, data["id"]).email is None


def test_primary_email_is_never_just_the_first_address() -> None:
    addresses = [{"id": "idn_a", "email_address": "first@example.com"}, {"id": "idn_b", "email_address": "b@x.com"}]
    data = {"id": "user_1", "email_addresses": addresses, "primary_email_address_id": "idn_b"}
    assert msgspec.convert(data, ClerkUser).primary_email == "b@x.com"
    assert msgspec.convert({**data, "primary_email_address_id": None}, ClerkUser).primary_email is None


def test_bad_signatures_and_headers_are_4xx_and_change_nothing(hook_client: TestClient, session: Session) -> None:
    body = sample("user_created.json")
    good = svix_headers(body)
    stale = svix_headers(body, at=datetime.now(UTC) - timedelta(minutes=6))
    future = svix_headers(body, at=datetime.now(UTC) + timedelta(minutes=6))
    cases = [
        ({**good, "svix-signature": "v1," + "A" * 44}, 401, "signature"),
        ({**good, "svix-signature": good["svix-signature"].replace("v1,", "v2,")}, 401, "signature"),
        ({**good, "svix-signature": "v1,not base64!!"}, 401, "signature"),
        ({**good, "svix-id": "msg_other"}, 401, "signature"),
        (stale, 401, "timestamp"),
        (future, 401, "timestamp"),
        ({**good, "svix-timestamp": "yesterday"}, 400, "malformed_header"),
        ({k: v for k, v in good.items() if k != "svix-id"}, 400, "missing_header"),
        ({k: v for k, v in good.items() if k != "svix-timestamp"}, 400, "missing_header"),
        ({k: v for k, v in good.items() if k != "svix-signature"}, 400, "missing_header"),
        ({}, 400, "missing_header"),
    ]
    for headers, status, reason in cases:
        response = hook_client.post(URL, content=body, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert response.json()["reason"] == reason
    tampered = hook_client.post(URL, content=body.replace(b"Example", b"Mallory"), headers=good)
    assert tampered.status_code == 401
    assert session.scalars(select(WebhookEvent)).all() == []


def test_any_matching_v1_signature_is_enough(hook_client: TestClient) -> None:
    body = sample("user_created.json")
    headers = svix_headers(body)
    headers["svix-signature"] = f"v1,{'B' * 44} v2,xyz {headers['svix-signature']}"
    assert hook_client.post(URL, content=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"\xff\xfe\x00garbage", "the body is not JSON"),
        (b"not json", "the body is not JSON"),
        (b"[1, 2]", "not a Clerk event"),
        (b'{"type": "user.created"}', "not a Clerk event"),
    ],
)
def test_signed_but_malformed_bodies_are_400(hook_client: TestClient, body: bytes, detail: str) -> None:
    timestamp = int(datetime.now(UTC).timestamp())
    headers = {
        "svix-id": "msg_x",
        "svix-timestamp": str(timestamp),
        "svix-signature": sign_bytes(body, "msg_x", timestamp),
    }
    response = hook_client.post(URL, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)


def test_an_unconfigured_secret_fails_closed(client: TestClient) -> None:
    body = sample("user_created.json")
    response = client.post(URL, content=body, headers=svix_headers(body))
    assert response.status_code == 503
    assert response.json()["reason"] == "disabled"


# -- delivery semantics -----------------------------------------------------------------------


def test_the_same_delivery_ten_times_is_applied_once(hook_client: TestClient, session: Session) -> None:
    body = sample("user_created.json")
    statuses = [deliver(hook_client, body, msg_id="msg_same").json()["status"] for _ in range(10)]
    assert statuses == ["processed"] + ["duplicate"] * 9
    assert len(session.scalars(select(WebhookEvent)).all()) == 1
    assert len(session.scalars(select(User)).all()) == 1


def test_an_older_update_is_ignored(hook_client: TestClient, session: Session) -> None:
    deliver(hook_client, user_event("user.updated", "user_o", 2000, "new@example.com", first_name="New"))
    late = deliver(hook_client, user_event("user.updated", "user_o", 1000, "old@example.com", first_name="Old"))
    assert late.json() == {"status": "ignored", "detail": "an update newer than this one is already applied"}
    user = user_by_clerk_id(session, "user_o")
    assert (user.email, user.first_name) == ("new@example.com", "New")


def test_deletion_tombstones_and_nothing_brings_the_user_back(
    hook_client: TestClient, session: Session, make_api_key: Callable
) -> None:
    deliver(hook_client, user_event("user.created", "user_d", 1000, "d@example.com", first_name="Dee"))
    make_api_key(user_by_clerk_id(session, "user_d"))
    assert deliver(hook_client, user_event("user.deleted", "user_d", 0)).json()["status"] == "processed"
    late = deliver(hook_client, user_event("user.updated", "user_d", 9000, "d@example.com", first_name="Back"))
    assert late.json()["status"] == "ignored"
    user = user_by_clerk_id(session, "user_d")
    assert user.deleted_at is not None
    assert (user.email, user.first_name, user.is_active) == (None, None, False)
    assert all(key.revoked_at for key in session.scalars(select(APIKey).where(APIKey.user_id == user.id)))
    created = session.scalar(select(WebhookEvent).where(WebhookEvent.type == "user.created"))
    assert created.payload == {"redacted": True}  # no personal data left in the event log


def test_deleting_an_unknown_user_is_2xx_and_keeps_a_tombstone(hook_client: TestClient, session: Session) -> None:
    assert deliver(hook_client, sample("user_deleted.json")).status_code == 200
    clerk_id = json.loads(sample("user_deleted.json"))["data"]["id"]
    assert user_by_clerk_id(session, clerk_id).deleted_at is not None
    created = user_event("user.created", clerk_id, 1, "late@example.com")
    assert deliver(hook_client, created).json()["status"] == "ignored"


def test_an_email_collision_is_recorded_and_acknowledged(
    hook_client: TestClient, session: Session, make_user: Callable
) -> None:
    make_user(email="taken@example.com")
    response = deliver(hook_client, user_event("user.created", "user_c", 1000, "Taken@Example.com"))
    assert response.status_code == 200
    assert response.json() == {"status": "failed", "detail": "a user with this e-mail already exists"}
    event = session.scalar(select(WebhookEvent))
    assert (event.outcome, event.detail, event.subject_id) == (
        "failed",
        "a user with this e-mail already exists",
        "user_c",
    )
    assert user_by_clerk_id(session, "user_c") is None  # the effect was rolled back, the record kept


def test_an_unappliable_user_payload_is_recorded_as_failed(hook_client: TestClient, session: Session) -> None:
    event = user_event("user.created", "user_long", 1000, "long@example.com", first_name="x" * 500)
    response = deliver(hook_client, event)
    assert (response.status_code, response.json()["status"]) == (200, "failed")
    assert "first_name" in response.json()["detail"]
    assert user_by_clerk_id(session, "user_long") is None


def _stream(users: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for n in range(users):
        clerk_id = f"user_{n:03d}"
        versions = rng.randint(1, 4)
        events.append(user_event("user.created", clerk_id, 1000, f"u{n}.v0@example.com", first_name="v0"))
        events += [
            user_event("user.updated", clerk_id, 1000 + v, f"u{n}.v{v}@example.com", first_name=f"v{v}")
            for v in range(1, versions)
        ]
        if rng.random() < 0.3:
            events.append(user_event("user.deleted", clerk_id, 0))
    return events


def _snapshot(session: Session) -> list[tuple]:
    session.expire_all()
    return [
        (u.clerk_id, u.email, u.first_name, u.clerk_updated_at, u.is_active, u.deleted_at is not None)
        for u in session.scalars(select(User).order_by(User.clerk_id))
    ]


def test_a_shuffled_stream_ends_in_the_same_rows_as_the_ordered_one(
    hook_client: TestClient, session: Session, database: Database
) -> None:
    events = _stream(users=25, seed=7)
    ids = [f"msg_{i:04d}" for i in range(len(events))]
    for event, msg_id in zip(events, ids, strict=True):
        assert deliver(hook_client, event, msg_id).status_code == 200
    ordered = _snapshot(session)
    assert len(ordered) == 25
    assert any(row[5] for row in ordered)

    session.rollback()
    with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))

    shuffled = list(zip(events, ids, strict=True))
    random.Random(11).shuffle(shuffled)
    for event, msg_id in shuffled + shuffled[:10]:  # with some redeliveries too
        assert deliver(hook_client, event, msg_id).status_code == 200
    assert _snapshot(session) == ordered


def test_an_update_costs_three_statements_in_one_transaction(hook_client: TestClient) -> None:
    """Record (already processed), lock the user, change it: no savepoint, no second event write."""
    database = hook_client.app.state.container.database
    deliver(hook_client, user_event("user.created", "user_budget", 1_700_000_000_000, "b@example.com"))
    with recorded(database) as seen:
        update = user_event("user.updated", "user_budget", 1_700_000_001_000, "b@example.com", first_name="B")
        assert deliver(hook_client, update).json()["status"] == "processed"
    assert seen["statements"] == ["INSERT", "SELECT", "UPDATE"]
    assert len(seen["checkin_threads"]) == 1
