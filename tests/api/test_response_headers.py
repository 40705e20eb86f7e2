"""Headers on every response: `nosniff` always; `Cache-Control: no-store` unless the app chose (only
the docs' vendored assets are cacheable); `Vary` on the credential headers wherever a credential was
read; the docs pages may not be framed."""

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest
from litestar import Litestar, Response, get
from litestar.testing import TestClient

from app.api.main import create_app
from app.api.request_log import AccessLog
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from tests.clerk_helpers import WEBHOOK_SECRET, svix_headers, user_event
from tests.helpers import settings_for

VARY = "Authorization, X-API-Key, Cookie"


def assert_headers(response, *, vary: bool, cache_control: str = "no-store") -> None:
    """Each header exactly once, with its value (or absent)."""
    headers = response.headers
    assert headers.get_list("x-content-type-options") == ["nosniff"], response.request.url
    assert headers.get_list("cache-control") == [cache_control], response.request.url
    assert headers.get_list("vary") == ([VARY] if vary else []), response.request.url


@pytest.fixture
def hook_client(settings: Settings, database: Database) -> Iterator[TestClient]:
    app = create_app(settings_for(settings.database_url, clerk_webhook_signing_secret=WEBHOOK_SECRET))
    with TestClient(app) as client:
        yield client


def test_authenticated_responses_are_not_stored_and_vary_by_credential(client: TestClient, as_user: Callable) -> None:
    user, headers = as_user()
    responses = {
        200: client.get("/api/users/me", headers=headers),
        400: client.get("/api/users", params={"limit": "many"}, headers=headers),
        401: client.get("/api/users/me"),
        403: client.post("/api/users", json={"email": "new@example.com"}, headers=headers),  # admins only
        404: client.get(f"/api/users/{str(user.id).replace('-', '')}", headers=headers),  # a non-canonical id
    }
    for status, response in responses.items():
        assert response.status_code == status, response.text
        assert_headers(response, vary=True)
    assert responses[200].json()["id"] == str(user.id)
    refused_key = client.get("/api/users/me", headers={"X-API-Key": "sk_not_a_key"})
    assert refused_key.status_code == 401
    assert_headers(refused_key, vary=True)


def test_the_response_that_shows_a_new_key_is_not_stored(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    created = client.post("/api/api-keys", json={"name": "ci"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["key"].startswith("sk_")
    assert_headers(created, vary=True)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/no/such/route", 404), ("GET", "/api/no-such-route", 404), ("PUT", "/health", 405)],
)
def test_router_errors_carry_the_headers(client: TestClient, method: str, path: str, status: int) -> None:
    """The router answers these before any route (or credential) is involved: nothing varies."""
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert_headers(response, vary=False)


def test_public_routes_are_not_stored_and_do_not_vary(client: TestClient) -> None:
    for path in ("/health", "/health/ready"):
        response = client.get(path)
        assert response.status_code == 200
        assert_headers(response, vary=False)


def test_webhook_responses_carry_the_headers(hook_client: TestClient) -> None:
    body = json.dumps(user_event("user.created", "user_headers", 1_700_000_000_000, "a@example.com"))
    signed = {**svix_headers(body), "content-type": "application/json"}
    accepted = hook_client.post("/webhooks/clerk", content=body, headers=signed)
    refused = hook_client.post("/webhooks/clerk", content=body + " ", headers=signed)  # signature no longer matches
    assert (accepted.status_code, refused.status_code) == (200, 401)
    assert accepted.json()["status"] == "processed"
    assert_headers(accepted, vary=False)
    assert_headers(refused, vary=False)


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger", "/schema/redoc", "/schema/openapi.json"])
def test_docs_pages_may_not_be_framed(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"].split("; ")
    assert_headers(response, vary=False)


def test_only_the_vendored_docs_assets_are_cacheable(client: TestClient) -> None:
    asset = client.get("/schema/assets/swagger-ui.css")
    assert asset.status_code == 200
    assert_headers(asset, vary=False, cache_control="public, max-age=86400")
    missing = client.get("/schema/assets/missing.js")
    assert missing.status_code == 404
    assert_headers(missing, vary=False)


def test_the_outer_layer_adds_to_a_start_message_without_headers() -> None:
    """ASGI lets an app send `http.response.start` with no header list at all."""

    async def bare(scope: dict, receive: object, send: Callable) -> None:
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "state": {}}
    asyncio.run(AccessLog(bare)(scope, receive, send))
    names = [name for name, _ in sent[0]["headers"]]
    assert names == [b"x-request-id", b"x-content-type-options", b"cache-control"]


def test_a_handler_that_sets_cache_control_on_its_own_still_gets_no_store() -> None:
    """Fail closed: without `cacheable`, caches see `no-store` beside the handler's choice (and obey it)."""

    @get("/page", sync_to_thread=False)
    def page() -> Response[str]:
        return Response("hello", headers={"Cache-Control": "public, max-age=60"})

    app = Litestar([page])
    app.asgi_handler = AccessLog(app.asgi_handler)
    with TestClient(app) as client:
        response = client.get("/page")
    assert response.headers.get_list("cache-control") == ["public, max-age=60", "no-store"]
