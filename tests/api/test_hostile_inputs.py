"""Input a client controls never costs a 500: each case is a 400 naming the field (or, for signed
webhooks, an event recorded as failed and acknowledged), on SQLite and on PostgreSQL."""

import json
import time
from collections.abc import Callable

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domains.base.actors import Role
from app.domains.webhooks.models import WebhookEvent
from tests.api.test_clerk_auth import KEY, bearer, clerk_client  # noqa: F401 (fixture)
from tests.api.test_clerk_webhooks import deliver, hook_client  # noqa: F401 (fixture)
from tests.clerk_helpers import sign_bytes, user_event

OVERFLOWING_INSTANTS = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
DEEP = b"[" * 10_000 + b"]" * 10_000


def _field_error(response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(error["key"].endswith(field) for error in response.json()["errors"]), response.json()


@pytest.mark.parametrize("field", ["first_name", "last_name", "image_url"])
def test_nul_in_a_text_field_is_a_400_naming_it(client: TestClient, as_user: Callable, field: str) -> None:
    _, headers = as_user()
    value = "https://img.example/\x00.png" if field == "image_url" else "Ada\x00"
    _field_error(client.patch("/api/users/me", headers=headers, json={field: value}), field)


def test_nul_in_create_bodies_and_in_the_search_is_a_400(client: TestClient, as_user: Callable) -> None:
    _, admin = as_user(role=Role.ADMIN)
    _field_error(client.post("/api/users", headers=admin, json={"email": "a@b.co", "first_name": "\x00"}), "first_name")
    _field_error(client.post("/api/api-keys", headers=admin, json={"name": "ci\x00"}), "name")
    _field_error(client.get("/api/users", headers=admin, params={"search": "a\x00"}), "search")


@pytest.mark.parametrize("instant", OVERFLOWING_INSTANTS)
def test_instants_that_overflow_in_utc_are_a_400(client: TestClient, as_user: Callable, instant: str) -> None:
    _, admin = as_user(role=Role.ADMIN)
    for parameter in ("created_after", "created_before"):
        _field_error(client.get("/api/users", headers=admin, params={parameter: instant}), parameter)
    _field_error(client.post("/api/api-keys", headers=admin, json={"name": "x", "expires_at": instant}), "expires_at")


def test_integers_past_a_column_are_a_400(client: TestClient, as_user: Callable) -> None:
    _, admin = as_user(role=Role.ADMIN)
    _field_error(client.get("/api/users", headers=admin, params={"offset": "9223372036854775808"}), "offset")


def test_json_nested_10_000_deep_is_a_400(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    for body in (DEEP, b'{"first_name": ' + DEEP + b"}"):
        response = client.patch("/api/users/me", headers={**headers, "content-type": "application/json"}, content=body)
        assert (response.status_code, response.json()["detail"]) == (400, "the request body is nested too deeply")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "ftp://example.com/a.png", "//x.png"])
def test_image_url_must_be_http_or_https(client: TestClient, as_user: Callable, url: str) -> None:
    _, headers = as_user()
    _field_error(client.patch("/api/users/me", headers=headers, json={"image_url": url}), "image_url")


def test_a_session_token_whose_sub_is_not_a_clerk_id_is_a_401(clerk_client: TestClient) -> None:  # noqa: F811
    for sub in ("user_\x00", "x" * 65, "user/../admin"):
        response = clerk_client.get("/api/users/me", headers=bearer(KEY.mint(sub=sub)))
        assert (response.status_code, response.json()["reason"]) == (401, "malformed"), sub


def test_a_400_digit_svix_timestamp_is_a_400_before_any_work(hook_client: TestClient) -> None:  # noqa: F811
    body = b"{}"
    timestamp = "9" * 400
    headers = {"svix-id": "msg_1", "svix-timestamp": timestamp, "svix-signature": sign_bytes(body, "msg_1", 1)}
    response = hook_client.post("/webhooks/clerk", content=body, headers=headers)
    assert (response.status_code, response.json()["reason"]) == (400, "malformed_header")


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("nul in the e-mail", {"email": "a\x00@example.com"}),
        ("nul in a name", {"first_name": "Ada\x00"}),
        ("absurd updated_at", {"updated_at": 10**20}),
        ("id longer than the column", {"clerk_id": "user_" + "x" * 300}),
    ],
)
def test_signed_events_the_database_would_refuse_are_recorded_as_failed(
    hook_client: TestClient,  # noqa: F811
    session: Session,
    case: str,
    fields: dict,
) -> None:
    fields = dict(fields)  # the parameter is shared by both backends' runs
    clerk_id = fields.pop("clerk_id", "user_hostile")
    updated_at = fields.pop("updated_at", 1_700_000_000_000)
    event = user_event("user.created", clerk_id, updated_at, fields.pop("email", "ok@example.com"), **fields)
    response = deliver(hook_client, event)
    assert (response.status_code, response.json()["status"]) == (200, "failed"), (case, response.text)
    stored = session.scalars(select(WebhookEvent)).one()
    assert (stored.outcome, bool(stored.detail)) == ("failed", True)


def test_a_signed_svix_id_longer_than_the_column_is_stored_once_by_digest(
    hook_client: TestClient,  # noqa: F811
    session: Session,
) -> None:
    body = json.dumps(user_event("user.created", "user_long_id", int(time.time() * 1000), "long@example.com"))
    long_id = "msg_" + "x" * 400
    assert deliver(hook_client, body, msg_id=long_id).json()["status"] == "processed"
    assert deliver(hook_client, body, msg_id=long_id).json()["status"] == "duplicate"
    assert session.scalars(select(WebhookEvent.svix_id)).one().startswith("sha256:")
