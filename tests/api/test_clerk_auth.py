"""Clerk session tokens over HTTP: the attack matrix, cookies, first-sight users, JWKS and rotation."""

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select, update

from app.api.main import create_app
from app.bootstrap import Container
from app.domains.base.actors import Actor
from app.domains.base.models import utcnow
from app.domains.base.permissions import permissions
from app.domains.users.clerk_user_sync import ClerkUserSync
from app.domains.users.models import User
from app.infrastructure.clerk_session_tokens import ClerkTokenVerifier, TokenRejected
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from tests.clerk_helpers import (
    ALLOWED_ORIGIN,
    ISSUER,
    MACHINE_CATEGORY,
    SESSION_CATEGORY,
    TEMPLATE_CATEGORY,
    SigningKey,
    jwks_server,
    session_claims,
    unsigned_token,
)
from tests.helpers import recorded, settings_for

KEY = SigningKey("ins_test")
OTHER_KEY = SigningKey("ins_test")  # same kid, different key: a forgery


def clerk_settings(settings: Settings, **overrides: object) -> Settings:
    values = {
        "clerk_issuer": ISSUER,
        "clerk_jwt_key": KEY.public_pem,
        "clerk_authorized_parties": [ALLOWED_ORIGIN, "http://localhost:3000"],
        **overrides,
    }
    return settings_for(settings.database_url, **values)


@pytest.fixture
def clerk_client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(clerk_settings(settings))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cookie(token: str, name: str = "__session") -> dict[str, str]:
    """The browser's `Cookie` header (httpx deprecates per-request `cookies=`)."""
    return {"Cookie": f"{name}={token}"}


ATTACKS: dict[str, tuple[Callable[[], str], str]] = {
    "alg-none": (lambda: unsigned_token(session_claims(), {"alg": "none", "typ": "JWT", "kid": KEY.kid}), "algorithm"),
    "hs256-with-public-key": (
        lambda: unsigned_token(
            session_claims(), {"alg": "HS256", "typ": "JWT", "kid": KEY.kid}, KEY.public_pem.encode()
        ),
        "algorithm",
    ),
    "rs512": (lambda: KEY.mint(algorithm="RS512"), "algorithm"),
    "wrong-key": (OTHER_KEY.mint, "signature"),
    "tampered-payload": (lambda: _tamper(KEY.mint()), "signature"),
    "expired": (lambda: KEY.mint(exp=int(time.time()) - 10, iat=int(time.time()) - 70), "expired"),
    "nbf-in-future": (lambda: KEY.mint(nbf=int(time.time()) + 30), "not_yet_valid"),
    "iat-in-future": (lambda: KEY.mint(iat=int(time.time()) + 30), "not_yet_valid"),
    "wrong-issuer": (lambda: KEY.mint(iss="https://evil.example.test"), "issuer"),
    "azp-not-allowed": (lambda: KEY.mint(azp="https://evil.example.test"), "authorized_party"),
    "azp-with-trailing-slash": (lambda: KEY.mint(azp=ALLOWED_ORIGIN + "/"), "authorized_party"),
    "no-sid": (lambda: KEY.mint(sid=None), "missing_claim"),
    "no-exp": (lambda: KEY.mint(exp=None), "missing_claim"),
    "no-sub": (lambda: KEY.mint(sub=None), "missing_claim"),
    "template-category": (lambda: KEY.mint(headers={"cat": TEMPLATE_CATEGORY}), "token_category"),
    "machine-category": (lambda: KEY.mint(headers={"cat": MACHINE_CATEGORY}), "token_category"),
    "pending-session": (lambda: KEY.mint(sts="pending"), "pending_session"),
    "garbage": (lambda: "abc.def.ghi", "malformed"),
    "not-a-jwt": (lambda: "hello", "malformed"),
}


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    return ".".join([header, payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"), signature])


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_matrix_is_all_401_with_the_failed_check(clerk_client: TestClient, attack: str) -> None:
    mint, reason = ATTACKS[attack]
    response = clerk_client.get("/api/users/me", headers=bearer(mint()))
    assert response.status_code == 401, response.text
    problem = response.json()
    assert problem["reason"] == reason, problem
    assert problem["detail"].startswith("session token rejected")
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer", "Token abc"], ids=repr)
def test_empty_or_foreign_authorization_headers_are_401(clerk_client: TestClient, authorization: str) -> None:
    response = clerk_client.get("/api/users/me", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["reason"] == "malformed"


def test_a_valid_token_authenticates_and_creates_the_user_on_first_sight(
    clerk_client: TestClient, database: Database
) -> None:
    token = KEY.mint(sub="user_first_sight")
    first = clerk_client.get("/api/users/me", headers=bearer(token))
    assert first.status_code == 200, first.text
    assert (first.json()["clerk_id"], first.json()["role"], first.json()["email"]) == (
        "user_first_sight",
        "member",
        None,
    )
    again = clerk_client.get("/api/users/me", headers=bearer(KEY.mint(sub="user_first_sight")))
    assert again.json()["id"] == first.json()["id"]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_session_category_and_small_clock_skew_are_accepted(clerk_client: TestClient) -> None:
    now = int(time.time())
    token = KEY.mint(headers={"cat": SESSION_CATEGORY}, exp=now - 3, iat=now - 63, nbf=now + 3)
    assert clerk_client.get("/api/users/me", headers=bearer(token)).status_code == 200


def test_cookies_authenticate_and_the_header_wins(clerk_client: TestClient) -> None:
    token = KEY.mint(sub="user_cookie")
    assert clerk_client.get("/api/users/me", headers=cookie(token)).status_code == 200
    assert clerk_client.get("/api/users/me", headers=cookie(token, "__session_Xy12ab")).status_code == 200
    both = clerk_client.get("/api/users/me", headers={**bearer("garbage"), **cookie(token)})
    assert both.status_code == 401
    assert clerk_client.get("/api/users/me", headers={**bearer(token), **cookie("garbage")}).status_code == 200


def test_a_token_without_azp_is_refused_unless_native_clients_are_opted_in(
    clerk_client: TestClient, settings: Settings, database: Database
) -> None:
    token = KEY.mint(azp=None)
    for credentials in (bearer(token), cookie(token)):
        response = clerk_client.get("/api/users/me", headers=credentials)
        assert (response.status_code, response.json()["reason"]) == (401, "authorized_party"), credentials
    opted_in = create_app(clerk_settings(settings, clerk_accept_tokens_without_azp=True))
    with TestClient(opted_in) as client:
        assert client.get("/api/users/me", headers=bearer(token)).status_code == 200
        assert client.get("/api/users/me", headers=cookie(token)).status_code == 401  # never a cookie


def test_both_credentials_give_the_same_context(clerk_client: TestClient, make_api_key: Callable) -> None:
    me = clerk_client.get("/api/users/me", headers=bearer(KEY.mint(sub="user_both"))).json()
    with_key = clerk_client.post(
        "/api/api-keys", headers=bearer(KEY.mint(sub="user_both")), json={"name": "from a session"}
    ).json()
    assert sorted(with_key["scopes"]) == sorted(permissions.all())
    assert clerk_client.get("/api/users/me", headers={"X-API-Key": with_key["key"]}).json()["id"] == me["id"]


def test_a_deleted_or_deactivated_user_is_signed_out(clerk_client: TestClient, make_user: Callable) -> None:
    make_user(clerk_id="user_gone", deleted_at=utcnow(), is_active=False, email=None)
    make_user(clerk_id="user_off", is_active=False)
    for sub in ("user_gone", "user_off"):
        response = clerk_client.get("/api/users/me", headers=bearer(KEY.mint(sub=sub)))
        assert response.status_code == 401
        assert response.json()["reason"] == "user_inactive"


def test_a_remembered_token_still_reads_its_user_each_request(clerk_client: TestClient, database: Database) -> None:
    """The token's verification is remembered, its user is not: one SELECT, one session and no
    transaction per request, and a user deactivated meanwhile is signed out on the next one."""
    token = KEY.mint(sub="user_remembered")
    assert clerk_client.get("/api/users/me", headers=bearer(token)).status_code == 200  # first sight: INSERT
    with recorded(clerk_client.app.state.container.database) as seen:
        for _ in range(3):
            assert clerk_client.get("/api/users/me", headers=bearer(token)).status_code == 200
    assert seen["statements"] == ["SELECT"] * 3
    assert len(seen["checkin_threads"]) == 3  # one session, one connection per request
    if database.engine.dialect.name == "postgresql":
        assert seen["autocommit"] == ["True"] * 3  # no BEGIN, no COMMIT
    with database.session() as session, session.begin():
        session.execute(update(User).where(User.clerk_id == "user_remembered").values(is_active=False))
    response = clerk_client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["reason"] == "user_inactive"


def test_session_tokens_are_refused_when_clerk_is_not_configured(client: TestClient) -> None:
    response = client.get("/api/users/me", headers=bearer(KEY.mint()))
    assert response.status_code == 401
    assert response.json()["reason"] == "disabled"


def test_first_sight_is_race_free(container: Container, database: Database) -> None:
    """Many first requests for one new Clerk user at once: one row, every request authenticated."""

    def authenticate(_: int) -> object:
        with container.unit_of_work() as uow:
            return uow.service(ClerkUserSync, actor=Actor.system()).authenticate("user_racing").user_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        user_ids = set(pool.map(authenticate, range(32)))
    assert len(user_ids) == 1
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.clerk_id == "user_racing")) == 1


def test_tokens_verify_against_a_real_jwks_endpoint(settings: Settings, database: Database) -> None:
    with jwks_server([KEY]) as (url, _, hits):
        app = create_app(clerk_settings(settings, clerk_jwt_key=None, clerk_jwks_url=url))
        with TestClient(app) as client:
            for _ in range(3):
                assert client.get("/api/users/me", headers=bearer(KEY.mint())).status_code == 200
            unknown = client.get("/api/users/me", headers=bearer(SigningKey("ins_unknown").mint()))
            assert unknown.status_code == 401
            assert unknown.json()["reason"] == "unknown_key"
        assert len(hits) == 1  # cached; the unknown kid waits for the cooldown before a refetch


def test_key_rotation_is_picked_up_from_the_jwks() -> None:
    """The keys are fetched on the event loop (`resolve_keys`); `verify` only reads them."""
    old, new = SigningKey("ins_old"), SigningKey("ins_new")
    with jwks_server([old]) as (url, keys, hits):
        verifier = ClerkTokenVerifier(ISSUER, [ALLOWED_ORIGIN], jwks_url=url, jwks_min_refresh_seconds=0)
        token = old.mint(sub="user_a")
        asyncio.run(verifier.resolve_keys([token]))
        assert verifier.verify(token).user_id == "user_a"
        keys[:] = [new]  # Clerk rotated its key
        token = new.mint(sub="user_b")
        with pytest.raises(TokenRejected, match="no signing key"):
            verifier.verify(token)  # a worker thread never fetches
        asyncio.run(verifier.resolve_keys([token]))
        assert verifier.verify(token).user_id == "user_b"
        assert len(hits) == 2


def test_an_unreachable_jwks_is_a_503_not_a_500(settings: Settings, database: Database) -> None:
    """The token may be valid: a 401 would sign the user out, so it is "retry later"."""
    unreachable = clerk_settings(settings, clerk_jwt_key=None, clerk_jwks_url="http://127.0.0.1:1/jwks.json")
    with TestClient(create_app(unreachable)) as client:
        response = client.get("/api/users/me", headers=bearer(KEY.mint()))
    assert response.status_code == 503
    assert response.json()["reason"] == "key_unavailable"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["retry-after"]) <= 10  # the next fetch, at most one interval away


def test_jwks_url_defaults_to_the_issuer_well_known_path() -> None:
    settings = settings_for("sqlite:///x.db", clerk_issuer=ISSUER)
    assert settings.clerk_jwks_endpoint == f"{ISSUER}/.well-known/jwks.json"
    with pytest.raises(TokenRejected):
        ClerkTokenVerifier(ISSUER, []).verify(KEY.mint())  # no key source at all: fails closed
