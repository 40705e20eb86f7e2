"""/api/users over HTTP: every route's happy path and its 401/403/404/4xx paths."""

import re
from collections.abc import Callable
from uuid import UUID

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session

from app.domains.base.actors import Role
from app.domains.users.models import User
from app.domains.users.permissions import UserPermission as Scope
from tests.helpers import served_operations

PUBLIC_FIELDS = {
    "id", "email", "clerk_id", "first_name", "last_name", "image_url", "role", "is_active", "created_at", "updated_at"
}  # fmt: skip


def test_me_returns_the_public_view_only(client: TestClient, as_user: Callable) -> None:
    user, headers = as_user(first_name="Ada")
    response = client.get("/api/users/me", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PUBLIC_FIELDS  # no deleted_at, no internals
    assert (body["id"], body["email"], body["first_name"], body["role"]) == (str(user.id), user.email, "Ada", "member")


def test_requests_without_valid_credentials_are_401(client: TestClient, as_user: Callable) -> None:
    for headers in ({}, {"X-API-Key": "nope"}, {"X-API-Key": "sk_0123456789abcdef_" + "a" * 43}):
        response = client.get("/api/users/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 401
        assert response.headers["www-authenticate"] == 'Bearer, ApiKey realm="X-API-Key"'


def test_patch_me_changes_only_the_fields_sent(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user(first_name="Ada", last_name="Lovelace")
    before = client.get("/api/users/me", headers=headers).json()
    response = client.patch("/api/users/me", headers=headers, json={"first_name": "Augusta"})
    assert response.status_code == 200
    after = response.json()
    assert after["first_name"] == "Augusta"
    assert {k: v for k, v in after.items() if k not in {"first_name", "updated_at"}} == {
        k: v for k, v in before.items() if k not in {"first_name", "updated_at"}
    }
    assert after["updated_at"] > before["updated_at"]


def test_member_cannot_change_own_role_or_active_flag(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    for change in ({"role": "admin"}, {"is_active": False}):
        response = client.patch("/api/users/me", headers=headers, json=change)
        assert response.status_code == 403, change
        assert response.json()["detail"].startswith("only admins may change")
    assert client.get("/api/users/me", headers=headers).json()["role"] == "member"


def test_patch_validation_errors_are_4xx_with_field_details(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    for body in ({"email": "not-an-email"}, {"email": None}, {"role": "owner"}, {"password": "x"}, {"first_name": 5}):
        response = client.patch("/api/users/me", headers=headers, json=body)
        assert response.status_code == 400, body
        problem = response.json()
        assert problem["status"] == 400
        assert problem["errors"], body


def test_duplicate_email_in_any_case_is_409(client: TestClient, as_user: Callable, make_user: Callable) -> None:
    taken = make_user()
    _, headers = as_user()
    response = client.patch("/api/users/me", headers=headers, json={"email": taken.email.upper()})
    assert response.status_code == 409
    assert response.json()["detail"] == "a user with this e-mail already exists"


def test_admin_creates_users_and_members_may_not(client: TestClient, as_user: Callable) -> None:
    _, admin = as_user(role=Role.ADMIN)
    _, member = as_user()
    created = client.post("/api/users", headers=admin, json={"email": "New@Example.com", "role": "admin"})
    assert created.status_code == 201
    assert (created.json()["email"], created.json()["role"]) == ("new@example.com", "admin")
    assert client.post("/api/users", headers=admin, json={"email": "NEW@example.com"}).status_code == 409
    assert client.post("/api/users", headers=member, json={"email": "x@example.com"}).status_code == 403
    assert (
        client.post("/api/users", headers=admin, json={"email": "x@example.com", "id": str(UUID(int=1))}).status_code
        == 400
    )


def test_list_users_is_scoped_paginated_searchable(client: TestClient, as_user: Callable, make_user: Callable) -> None:
    _, admin_headers = as_user(role=Role.ADMIN)
    member, member_headers = as_user()
    for n in range(3):
        make_user(email=f"zed{n}@example.com", last_name=f"Zed{n}")

    page = client.get("/api/users", headers=admin_headers, params={"limit": 2, "offset": 1}).json()
    assert (len(page["items"]), page["total"], page["limit"], page["offset"]) == (2, 5, 2, 1)

    found = client.get("/api/users", headers=admin_headers, params={"search": "ZED1"}).json()
    assert [u["email"] for u in found["items"]] == ["zed1@example.com"]

    ordered = client.get(
        "/api/users", headers=admin_headers, params={"order_by": "email", "sort_order": "asc", "search": "zed"}
    ).json()
    assert [u["email"] for u in ordered["items"]] == ["zed0@example.com", "zed1@example.com", "zed2@example.com"]

    recent = client.get("/api/users", headers=admin_headers, params={"created_after": "2000-01-01T00:00:00Z"}).json()
    assert recent["total"] == 5
    none = client.get("/api/users", headers=admin_headers, params={"created_before": "2000-01-01T00:00:00"}).json()
    assert none["total"] == 0

    own = client.get("/api/users", headers=member_headers).json()
    assert ([u["id"] for u in own["items"]], own["total"]) == ([str(member.id)], 1)


def test_every_bad_list_parameter_is_the_same_400_naming_it(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user(role=Role.ADMIN)
    for params in (
        {"limit": 0},
        {"limit": 1000},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": 1_000_001},
        {"search": ""},
        {"search": "x" * 101},
        {"order_by": "key_hash"},
        {"order_by": "deleted_at; DROP TABLE users"},
        {"sort_order": "sideways"},
        {"created_after": "yesterday"},
    ):
        response = client.get("/api/users", headers=headers, params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"].startswith("application/problem+json"), params
        (name,) = params
        assert [error["key"] for error in response.json()["errors"]] == [name], response.json()


def test_get_user_by_id(client: TestClient, as_user: Callable, make_user: Callable) -> None:
    other = make_user()
    _, admin = as_user(role=Role.ADMIN)
    member, member_headers = as_user()
    assert client.get(f"/api/users/{other.id}", headers=admin).json()["id"] == str(other.id)
    assert client.get(f"/api/users/{member.id}", headers=member_headers).status_code == 200
    hidden = client.get(f"/api/users/{other.id}", headers=member_headers)
    assert hidden.status_code == 404
    assert other.email not in hidden.text
    assert client.get(f"/api/users/{UUID(int=7)}", headers=admin).status_code == 404
    assert client.get("/api/users/not-a-uuid", headers=admin).status_code in {400, 404}


def test_patch_user_by_id(client: TestClient, as_user: Callable, make_user: Callable, session: Session) -> None:
    target = make_user()
    _, admin = as_user(role=Role.ADMIN)
    _, member = as_user()
    response = client.patch(f"/api/users/{target.id}", headers=admin, json={"role": "admin", "is_active": False})
    assert response.status_code == 200
    assert (response.json()["role"], response.json()["is_active"]) == ("admin", False)
    assert client.patch(f"/api/users/{target.id}", headers=member, json={"first_name": "x"}).status_code == 404
    session.expire_all()
    assert session.get(User, target.id).first_name == target.first_name


def test_delete_user_is_a_soft_delete_for_admins(client: TestClient, as_user: Callable) -> None:
    victim, victim_headers = as_user()
    _, admin = as_user(role=Role.ADMIN)
    _, member = as_user()
    assert client.delete(f"/api/users/{victim.id}", headers=member).status_code == 404
    assert client.delete(f"/api/users/{victim.id}", headers=victim_headers).status_code == 403
    assert client.delete(f"/api/users/{victim.id}", headers=admin).status_code == 204
    assert client.get(f"/api/users/{victim.id}", headers=admin).status_code == 404
    assert client.delete(f"/api/users/{victim.id}", headers=admin).status_code == 404
    assert client.get("/api/users/me", headers=victim_headers).status_code == 401  # its keys are revoked


def test_scopes_limit_what_a_key_may_do(client: TestClient, as_user: Callable) -> None:
    _, read_only = as_user(role=Role.ADMIN, scopes=[Scope.USERS_READ])
    assert client.get("/api/users/me", headers=read_only).status_code == 200
    denied = client.patch("/api/users/me", headers=read_only, json={"first_name": "x"})
    assert denied.status_code == 403
    assert denied.json()["required_permission"] == "users:write"
    assert client.post("/api/users", headers=read_only, json={"email": "a@example.com"}).status_code == 403
    assert client.get("/api/api-keys", headers=read_only).status_code == 403


def test_every_api_route_is_401_without_credentials(app: Litestar, client: TestClient) -> None:
    """Every operation under /api the app serves (documented or not), read from its routes, so a
    new domain's routes are covered with no count to edit."""
    operations = [
        (method, re.sub(r"\{[^}]+\}", str(UUID(int=1)), path))
        for method, path in sorted(served_operations(app, documented_only=False))
        if path.startswith("/api/")
    ]
    assert ("get", "/api/users/me") in operations
    for method, path in operations:
        response = client.request(method.upper(), path, json={} if method in {"post", "patch", "put"} else None)
        assert response.status_code == 401, (method, path)
        assert response.json()["reason"] == "missing"
