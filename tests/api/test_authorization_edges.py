"""Authorization edges: keys created by keys, the last admin, canonical ids, CSRF on cookies."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import TestClient

from app.domains.base.actors import Role
from tests.api.test_clerk_auth import KEY, clerk_client  # noqa: F401 (fixture)
from tests.clerk_helpers import ALLOWED_ORIGIN


def _create_key(client: TestClient, headers: dict, **body: object) -> dict:
    response = client.post("/api/api-keys", headers=headers, json={"name": "child", **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_key_created_with_a_key_never_outlives_it(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    parent = _create_key(client, headers, expires_at=in_an_hour.isoformat())
    parent_headers = {"X-API-Key": parent["key"]}
    child = _create_key(client, parent_headers)  # no expiry asked: the parent's
    assert child["parent_id"] == parent["id"]
    assert datetime.fromisoformat(child["expires_at"]) == datetime.fromisoformat(parent["expires_at"])
    later = (in_an_hour + timedelta(days=365)).isoformat()
    refused = client.post("/api/api-keys", headers=parent_headers, json={"name": "x", "expires_at": later})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["key"] == "expires_at"


def test_revoking_a_key_revokes_every_key_it_created(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    parent = _create_key(client, headers)
    child = _create_key(client, {"X-API-Key": parent["key"]})
    grandchild = _create_key(client, {"X-API-Key": child["key"]})
    sibling = _create_key(client, headers)
    assert client.delete(f"/api/api-keys/{parent['id']}", headers=headers).status_code == 204
    for key in (parent, child, grandchild):
        response = client.get("/api/users/me", headers={"X-API-Key": key["key"]})
        assert (response.status_code, response.json()["detail"]) == (401, "API key revoked")
    assert client.get("/api/users/me", headers={"X-API-Key": sibling["key"]}).status_code == 200


def test_an_admin_cannot_remove_itself_nor_the_last_admin_be_lost(client: TestClient, as_user: Callable) -> None:
    admin, headers = as_user(role=Role.ADMIN)
    for method, body, detail in (
        ("DELETE", None, "an admin cannot delete itself"),
        ("PATCH", {"is_active": False}, "an admin cannot deactivate itself"),
        ("PATCH", {"role": "member"}, "cannot demote the last active admin"),
    ):
        response = client.request(method, f"/api/users/{admin.id}", headers=headers, json=body)
        assert (response.status_code, response.json()["detail"]) == (409, detail), method
    other, other_headers = as_user(role=Role.ADMIN)
    assert client.patch(f"/api/users/{admin.id}", headers=headers, json={"role": "member"}).status_code == 200
    assert client.delete(f"/api/users/{other.id}", headers=headers).status_code == 404  # a member now
    response = client.patch(f"/api/users/{other.id}", headers=other_headers, json={"role": "member"})
    assert (response.status_code, response.json()["detail"]) == (409, "cannot demote the last active admin")


@pytest.mark.parametrize("spelling", ["{%s}", "urn:uuid:%s", "UNHYPHENATED"])
def test_ids_in_paths_are_only_the_canonical_form(client: TestClient, as_user: Callable, spelling: str) -> None:
    user, headers = as_user(role=Role.ADMIN)
    raw = user.id.hex if spelling == "UNHYPHENATED" else spelling % user.id
    assert client.get(f"/api/users/{user.id}", headers=headers).status_code == 200
    assert client.get(f"/api/users/{str(user.id).upper()}", headers=headers).status_code == 200
    assert client.get(f"/api/users/{raw}", headers=headers).status_code == 404


def test_cookie_authenticated_changes_need_an_allowed_origin_and_json(clerk_client: TestClient) -> None:  # noqa: F811
    cookies = {"__session": KEY.mint(sub="user_csrf")}
    clerk_client.cookies.update(cookies)
    try:
        assert clerk_client.get("/api/users/me").status_code == 200  # reads are unchanged
        form = clerk_client.patch(
            "/api/users/me",
            content=b'{"first_name": "Mallory"}',
            headers={"Origin": ALLOWED_ORIGIN, "Content-Type": "text/plain"},
        )
        assert (form.status_code, form.json()["reason"]) == (403, "csrf")
        for origin in (None, "https://evil.example.test", ALLOWED_ORIGIN + "/"):
            headers = {"Origin": origin} if origin else {}
            response = clerk_client.patch("/api/users/me", json={"first_name": "Mallory"}, headers=headers)
            assert (response.status_code, response.json()["reason"]) == (403, "csrf"), origin
        allowed = clerk_client.patch("/api/users/me", json={"first_name": "Ada"}, headers={"Origin": ALLOWED_ORIGIN})
        assert (allowed.status_code, allowed.json()["first_name"]) == (200, "Ada")
    finally:
        clerk_client.cookies.clear()
    header_auth = {"Authorization": f"Bearer {KEY.mint(sub='user_csrf')}", "Content-Type": "text/plain"}
    assert clerk_client.patch(
        "/api/users/me", content=b'{"first_name": "Hopper"}', headers=header_auth
    ).status_code in {
        200,
        400,
        415,
    }
