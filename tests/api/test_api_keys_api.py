"""/api/api-keys over HTTP, and API-key authentication as clients see it."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from litestar import Litestar
from litestar.testing import TestClient

from app.api.main import create_app
from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.users.service import APIKeyService
from app.infrastructure.config import Settings


def test_create_returns_the_key_once_and_it_authenticates(client: TestClient, as_user: Callable) -> None:
    user, headers = as_user()
    created = client.post("/api/api-keys", headers=headers, json={"name": "deploy", "scopes": ["users:read"]})
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith(body["prefix"] + "_")
    assert (body["user_id"], body["scopes"], body["revoked_at"]) == (str(user.id), ["users:read"], None)
    assert "key_hash" not in body

    new_headers = {"X-API-Key": body["key"]}
    assert client.get("/api/users/me", headers=new_headers).json()["id"] == str(user.id)
    assert client.patch("/api/users/me", headers=new_headers, json={"first_name": "x"}).status_code == 403

    listed = client.get("/api/api-keys", headers=headers).json()
    assert listed["total"] == 2
    assert all("key" not in item and "key_hash" not in item for item in listed["items"])
    assert {item["prefix"] for item in listed["items"]} >= {body["prefix"]}


def test_create_rejects_bad_input(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for payload, status in (
        ({"name": ""}, 400),
        ({}, 400),
        ({"name": "x", "scopes": ["root"]}, 400),
        ({"name": "x", "expires_at": "2030-01-01T00:00:00"}, 400),  # no timezone
        ({"name": "x", "expires_at": past}, 422),
        ({"name": "x", "user_id": str(UUID(int=1))}, 400),
    ):
        response = client.post("/api/api-keys", headers=headers, json=payload)
        assert response.status_code == status, payload
        assert response.headers["content-type"].startswith("application/problem+json")


def test_a_key_cannot_mint_a_stronger_key(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user(scopes=["api_keys:write"])
    response = client.post("/api/api-keys", headers=headers, json={"name": "x", "scopes": ["users:write"]})
    assert response.status_code == 403


def test_revoke_own_key_and_admin_revokes_any(client: TestClient, as_user: Callable) -> None:
    _, alice = as_user()
    _, bob = as_user()
    _, admin = as_user(role=Role.ADMIN)
    alice_key = client.post("/api/api-keys", headers=alice, json={"name": "spare"}).json()
    bob_key = client.post("/api/api-keys", headers=bob, json={"name": "spare"}).json()

    assert client.delete(f"/api/api-keys/{bob_key['id']}", headers=alice).status_code == 404
    assert client.delete(f"/api/api-keys/{alice_key['id']}", headers=alice).status_code == 204
    assert client.get("/api/users/me", headers={"X-API-Key": alice_key["key"]}).status_code == 401
    assert client.delete(f"/api/api-keys/{bob_key['id']}", headers=admin).status_code == 204
    assert client.get("/api/users/me", headers={"X-API-Key": bob_key["key"]}).status_code == 401
    assert client.delete(f"/api/api-keys/{UUID(int=3)}", headers=admin).status_code == 404
    assert client.get("/api/api-keys", headers=admin).json()["total"] == 5


def test_revocation_takes_effect_at_once_in_every_process(app: Litestar, settings: Settings, as_user: Callable) -> None:
    """Two app instances stand for two processes: each has its own engine and key memory."""
    _, headers = as_user()
    other_app = create_app(settings)
    with TestClient(app) as first, TestClient(other_app) as second:
        spare = first.post("/api/api-keys", headers=headers, json={"name": "spare"}).json()
        spare_headers = {"X-API-Key": spare["key"]}
        assert first.get("/api/users/me", headers=spare_headers).status_code == 200
        assert second.get("/api/users/me", headers=spare_headers).status_code == 200  # both now remember it

        assert first.delete(f"/api/api-keys/{spare['id']}", headers=headers).status_code == 204

        assert first.get("/api/users/me", headers=spare_headers).status_code == 401
        assert second.get("/api/users/me", headers=spare_headers).status_code == 401


def test_expired_key_is_401_with_the_reason(client: TestClient, as_user: Callable, container: Container) -> None:
    _, headers = as_user()
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = client.post("/api/api-keys", headers=headers, json={"name": "brief", "expires_at": in_an_hour}).json()
    key_headers = {"X-API-Key": created["key"]}
    assert client.get("/api/users/me", headers=key_headers).status_code == 200
    with container.unit_of_work(Actor.system()) as uow:  # the hour has passed
        uow.service(APIKeyService).update({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, UUID(created["id"]))
    response = client.get("/api/users/me", headers=key_headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "API key expired"
