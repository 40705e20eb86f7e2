"""Every path that writes an e-mail stores it by the users domain's one rule and refuses what is not
an address: the API, the Clerk webhook, the Clerk reconciliation, `generate-user` and `populate`.

The webhook's choice for an invalid primary e-mail: Svix retries anything but a 2xx, and an address
Clerk sent will not become valid by itself, so the event is acknowledged (200), recorded as failed
with the reason, and changes nothing (the user is neither created nor updated); the stored payload
lets it be replayed once the rule or the data changes."""

import json
import unicodedata
from collections.abc import Callable, Iterator

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.bootstrap import Container
from app.cli import generate_user
from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import DomainError
from app.domains.users.clerk_user_reconciliation import ClerkUserReconciliation
from app.domains.users.emails import normalized_email
from app.domains.users.models import User
from app.domains.webhooks.models import WebhookEvent
from app.infrastructure.config import Settings, get_settings
from app.infrastructure.database import Database
from tests import populate
from tests.clerk_helpers import WEBHOOK_SECRET, svix_headers, user_event
from tests.helpers import CHEAP_ARGON2, settings_for

NFC = "josé@example.com"
NFD = unicodedata.normalize("NFD", NFC)
T0 = 1_700_000_000_000


def emails(session: Session) -> list[str | None]:
    session.expire_all()
    return sorted((user.email for user in session.scalars(select(User))), key=str)


# -- the API ---------------------------------------------------------------------------------------


def test_the_api_stores_the_normal_form_and_refuses_an_nfd_twin(client: TestClient, as_user: Callable) -> None:
    admin_user, admin = as_user(Role.ADMIN)
    created = client.post("/api/users", headers=admin, json={"email": f"  {NFD.upper()} "})
    assert created.status_code == 201, created.text
    assert created.json()["email"] == NFC
    twin = client.post("/api/users", headers=admin, json={"email": NFD})
    assert (twin.status_code, twin.json()["detail"]) == (409, "a user with this e-mail already exists")
    changed = client.patch("/api/users/me", headers=admin, json={"email": "Admin@EXAMPLE.org"})
    assert changed.json()["email"] == "admin@example.org"
    assert admin_user.id  # the admin changed its own address


@pytest.mark.parametrize("email", ["Ada <ada@example.com>", "ada@example.test", "ada@localhost", "ad\u200ba@x.org"])
def test_the_api_refuses_what_is_not_an_address(client: TestClient, as_user: Callable, email: str) -> None:
    _, admin = as_user(Role.ADMIN)
    for response in (
        client.post("/api/users", headers=admin, json={"email": email}),
        client.patch("/api/users/me", headers=admin, json={"email": email}),
    ):
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "value is not a valid email address" in response.text


def test_the_openapi_document_still_says_format_email(client: TestClient) -> None:
    schemas = client.get("/schema/openapi.json").json()["components"]["schemas"]
    email = schemas["UserCreate"]["properties"]["email"]
    assert {key: email[key] for key in ("type", "format", "maxLength")} == {
        "type": "string",
        "format": "email",
        "maxLength": 320,
    }
    assert "special-use" in email["description"]  # the rule past the format, for client authors


# -- the Clerk webhook -----------------------------------------------------------------------------


@pytest.fixture
def hook_client(settings: Settings, database: Database) -> Iterator[TestClient]:
    app = create_app(settings_for(settings.database_url, clerk_webhook_signing_secret=WEBHOOK_SECRET))
    with TestClient(app) as client:
        yield client


def deliver(client: TestClient, event: dict, msg_id: str | None = None):
    body = json.dumps(event)
    return client.post(
        "/webhooks/clerk", content=body, headers={**svix_headers(body, msg_id), "content-type": "application/json"}
    )


def test_the_webhook_stores_the_normal_form(hook_client: TestClient, session: Session) -> None:
    response = deliver(hook_client, user_event("user.created", "user_nfd", T0, f" {NFD.upper()}"))
    assert response.json()["status"] == "processed"
    assert emails(session) == [NFC]


def test_the_webhook_refuses_an_nfd_twin_of_a_stored_address(
    hook_client: TestClient, session: Session, make_user: Callable[..., User]
) -> None:
    make_user(email=NFC)
    response = deliver(hook_client, user_event("user.created", "user_twin", T0, NFD))
    assert response.status_code == 200
    assert response.json() == {"status": "failed", "detail": "a user with this e-mail already exists"}
    assert emails(session) == [NFC]  # one user, not two identical-looking ones
    assert session.scalar(select(User).where(User.clerk_id == "user_twin")) is None


@pytest.mark.parametrize("email", ["not-an-email", "Ada <ada@example.com>", "ada@localhost"])
def test_an_invalid_primary_email_is_acknowledged_recorded_and_changes_nothing(
    hook_client: TestClient, session: Session, make_user: Callable[..., User], email: str
) -> None:
    make_user(clerk_id="user_known", email="known@example.com", first_name="Old")
    created = deliver(hook_client, user_event("user.created", "user_new", T0, email), msg_id="msg_create")
    updated = deliver(hook_client, user_event("user.updated", "user_known", T0, email, first_name="New"))
    for response in (created, updated):
        assert response.status_code == 200  # Svix would retry anything else, forever in vain
        body = response.json()
        assert body["status"] == "failed"
        assert body["detail"].startswith("email: value is not a valid email address: ")
    assert session.scalar(select(User).where(User.clerk_id == "user_new")) is None
    known = session.scalar(select(User).where(User.clerk_id == "user_known"))
    assert (known.email, known.first_name) == ("known@example.com", "Old")  # the whole event is not applied
    events = session.scalars(select(WebhookEvent).order_by(WebhookEvent.type)).all()
    assert [(event.type, event.outcome) for event in events] == [("user.created", "failed"), ("user.updated", "failed")]
    assert all(event.detail.startswith("email: value is not a valid email address") for event in events)
    redelivered = deliver(hook_client, user_event("user.created", "user_new", T0, email), msg_id="msg_create")
    assert redelivered.json()["status"] == "duplicate"


# -- the Clerk reconciliation ----------------------------------------------------------------------


def test_the_reconciliation_applies_the_rule(container: Container, session: Session) -> None:
    with container.unit_of_work(Actor.system()) as uow:
        uow.service(ClerkUserReconciliation).reconcile_user(
            user_event("user.created", "user_r1", T0, NFD.upper())["data"]
        )
    for email in (NFC, "not-an-email"):  # the twin, the non-address: each refused, nothing written
        with pytest.raises(DomainError), container.unit_of_work(Actor.system()) as uow:
            uow.service(ClerkUserReconciliation).reconcile_user(
                user_event("user.created", "user_r2", T0, email)["data"]
            )
    assert emails(session) == [NFC]


# -- generate-user and populate --------------------------------------------------------------------


@pytest.fixture
def cli_environment(settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator:
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    for name, value in CHEAP_ARGON2.items():
        monkeypatch.setenv(name.upper(), str(value))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_environment")
def test_generate_user_applies_the_rule(session: Session, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate_user(["--email", f" {NFD.upper()} "]) == 0
    assert emails(session) == [NFC]
    assert generate_user(["--email", NFC]) == 1
    assert "a user with this e-mail already exists" in capsys.readouterr().err
    assert generate_user(["--email", "Ada <ada@example.com>"]) == 2
    assert "error: email: value is not a valid email address: A display name" in capsys.readouterr().err
    assert emails(session) == [NFC]


def test_populate_stores_normal_forms(container: Container, session: Session) -> None:
    populate.populate(container, 30, batch_size=7)
    stored = emails(session)
    assert len(stored) == 30
    assert all(email is not None and normalized_email(email) == email for email in stored)
