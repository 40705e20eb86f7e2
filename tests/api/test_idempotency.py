"""Idempotency-Key on the creating POSTs, over HTTP on both databases: replays, a reused key, keys
per user, concurrent duplicates, failures that free the key, expiry, the header's syntax, an API
key's secret never stored readable, the OpenAPI document, and the path without the header."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from litestar import Controller
from litestar.params import FromQuery
from litestar.testing import TestClient
from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session

from app.api import main
from app.api.dependencies import UnitOfWorkDep
from app.api.route_decorators import post
from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.base.models import utcnow
from app.domains.base.schemas import to_public
from app.domains.idempotency.models import IdempotencyKey
from app.domains.idempotency.service import IN_FLIGHT_WAIT_MS, IdempotencyService
from app.domains.jobs.models import Job
from app.domains.organizations.models import Membership, Organization
from app.domains.projects.models import Project
from app.domains.projects.permissions import ProjectPermission
from app.domains.projects.schemas import ProjectCreate, ProjectPublic
from app.domains.projects.service import ProjectService
from app.domains.users.models import APIKey, User
from app.infrastructure.database import Database


def count(session: Session, model: type) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def org(make_organization: Callable[..., Organization]) -> Organization:
    return make_organization(name="Acme")


@pytest.fixture
def org_admin(org: Organization, as_member: Callable[..., tuple[User, dict]]) -> tuple[User, dict]:
    return as_member(org, "admin")


# route -> (path, body, the table a request adds a row to); `{org}` is the organization's id.
ROUTES: dict[str, tuple[str, dict[str, Any] | None, type]] = {
    "createUser": ("/api/users", {"email": "new@example.com", "first_name": "New"}, User),
    "createApiKey": ("/api/api-keys", {"name": "ci", "scopes": ["projects:read"]}, APIKey),
    "createProject": ("/api/projects", {"name": "Apollo", "description": "to the moon"}, Project),
    "startUserExport": ("/api/users/me/exports", None, Job),
    "startOrganizationExport": ("/api/organizations/{org}/exports", None, Job),
}


def _caller(route: str, org: Organization, org_admin: tuple[User, dict], as_user: Callable) -> dict[str, str]:
    if route == "createUser":
        return as_user(Role.ADMIN)[1]
    return org_admin[1]  # an admin of the active organization (its key is bound to it)


@pytest.mark.parametrize("route", ROUTES)
def test_a_retry_gets_the_first_response_back_and_creates_nothing(
    route: str,
    client: TestClient,
    session: Session,
    org: Organization,
    org_admin: tuple[User, dict],
    as_user: Callable,
) -> None:
    path, body, table = ROUTES[route]
    path = path.format(org=org.id)
    headers = {**_caller(route, org, org_admin, as_user), "Idempotency-Key": f'"{uuid4()}"'}
    first = client.post(path, headers=headers, json=body)
    assert first.status_code in {201, 202}, first.text
    assert "idempotent-replayed" not in first.headers
    rows = count(session, table)

    # The retry re-serialises its body (other key order, whitespace): the same request.
    again = json.dumps(dict(reversed(list(body.items()))), indent=2) if body else None
    for _ in range(2):
        retry = client.post(path, headers={**headers, "Content-Type": "application/json"}, content=again)
        assert retry.status_code == first.status_code
        assert retry.content == first.content  # byte for byte
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.headers["content-type"] == first.headers["content-type"]
        assert retry.headers.get("location") == first.headers.get("location")
        assert retry.headers["x-request-id"] != first.headers["x-request-id"]  # a request of its own
    assert count(session, table) == rows
    assert count(session, IdempotencyKey) == 1


def test_the_same_key_with_another_request_is_422_and_changes_nothing(
    client: TestClient, session: Session, org_admin: tuple[User, dict]
) -> None:
    headers = {**org_admin[1], "Idempotency-Key": "k-1"}
    assert client.post("/api/projects", headers=headers, json={"name": "Apollo"}).status_code == 201
    reused = client.post("/api/projects", headers=headers, json={"name": "Gemini"})
    assert reused.status_code == 422
    assert reused.headers["content-type"].startswith("application/problem+json")
    problem = reused.json()
    assert problem["reason"] == "idempotency_key_reused"
    assert problem["errors"] == [
        {"key": "Idempotency-Key", "message": "already used with another request body", "source": "header"}
    ]
    # Another route with the same key is another request too.
    assert client.post("/api/users/me/exports", headers=headers).status_code == 422
    assert [project.name for project in session.scalars(select(Project))] == ["Apollo"]
    assert count(session, Job) == 0


def test_keys_are_per_user_whatever_credential_the_user_sends(
    client: TestClient,
    session: Session,
    org: Organization,
    org_admin: tuple[User, dict],
    as_member: Callable,
    make_api_key: Callable,
) -> None:
    """Another user's identical key and request is independent; the same user's second API key
    shares the user's keys (a client that rotated its key mid-retry still replays)."""
    user, headers = org_admin
    _, other = as_member(org, "admin")
    body = {"name": "Apollo"}
    first = client.post("/api/projects", headers={**headers, "Idempotency-Key": "same"}, json=body)
    second = client.post("/api/projects", headers={**other, "Idempotency-Key": "same"}, json=body)
    assert (first.status_code, second.status_code) == (201, 201)
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]

    rotated = {"X-API-Key": make_api_key(user, organization=org)}
    retry = client.post("/api/projects", headers={**rotated, "Idempotency-Key": "same"}, json=body)
    assert (retry.headers["idempotent-replayed"], retry.json()) == ("true", first.json())
    assert count(session, Project) == 2


def test_the_same_request_in_another_organization_is_another_request(
    client: TestClient,
    session: Session,
    org_admin: tuple[User, dict],
    make_organization: Callable,
    make_membership: Callable,
    make_api_key: Callable,
) -> None:
    """The tenant is part of the request: a key replayed from another organization would answer
    with a project that is not where the client asked for it."""
    user, in_acme = org_admin
    globex = make_organization(name="Globex")
    make_membership(globex, user, "admin")
    in_globex = {"X-API-Key": make_api_key(user, organization=globex)}
    body = {"name": "Apollo"}
    assert client.post("/api/projects", headers={**in_acme, "Idempotency-Key": "k"}, json=body).status_code == 201
    other = client.post("/api/projects", headers={**in_globex, "Idempotency-Key": "k"}, json=body)
    assert (other.status_code, other.json()["reason"]) == (422, "idempotency_key_reused")
    assert count(session, Project) == 1


def test_concurrent_duplicates_create_one_resource_and_all_get_its_response(
    client: TestClient, session: Session, org_admin: tuple[User, dict]
) -> None:
    """Sent together, 6 at a time, 3 rounds: the claim on the key's unique index makes the others
    wait for the first transaction, then replay it."""
    _, headers = org_admin
    for round_ in range(3):
        key_headers = {**headers, "Idempotency-Key": f"round-{round_}"}
        start = threading.Barrier(6)

        def send(key_headers: dict[str, str] = key_headers, start: threading.Barrier = start) -> Any:
            start.wait()
            return client.post("/api/projects", headers=key_headers, json={"name": "Apollo"})

        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda _: send(), range(6)))
        assert [response.status_code for response in responses] == [201] * 6, [r.text for r in responses]
        assert len({response.content for response in responses}) == 1
        assert sum("idempotent-replayed" in response.headers for response in responses) == 5
        assert count(session, Project) == round_ + 1


@pytest.fixture
def slow_app(monkeypatch: pytest.MonkeyPatch, container: Container) -> Iterator[TestClient]:
    """The app with one more idempotent route: it creates a project, then takes `seconds`, or fails."""

    class Slow(Controller):
        path = "/api/slow-projects"

        @post("/", operation_id="createProjectSlowly", requires=ProjectPermission.PROJECTS_WRITE, idempotent=True)
        def create_slowly(
            self, uow: UnitOfWorkDep, seconds: FromQuery[float] = 0, fail: FromQuery[bool] = False
        ) -> ProjectPublic:
            project = uow.service(ProjectService).create(ProjectCreate(name="Slow"))
            time.sleep(seconds)
            if fail:
                raise RuntimeError("the server broke after creating")
            return to_public(ProjectPublic, project)

    monkeypatch.setattr(main, "controllers", [*main.controllers, Slow])
    with TestClient(main.create_app(container=container)) as client:
        yield client


def test_a_duplicate_of_a_request_still_running_waits_then_gets_409_on_postgresql(
    slow_app: TestClient, session: Session, database: Database, org_admin: tuple[User, dict]
) -> None:
    """PostgreSQL: the duplicate waits IN_FLIGHT_WAIT_MS for the first, then 409 with Retry-After
    (the first one still commits). SQLite serialises writers: the duplicate waits (up to its busy
    timeout) and replays."""
    headers = {**org_admin[1], "Idempotency-Key": "slow"}
    seconds = IN_FLIGHT_WAIT_MS / 1000 + 1
    # The key's first use writes its last_used_at: not inside the slow transaction, or the duplicate
    # would wait on that row instead.
    assert slow_app.get("/api/users/me", headers=org_admin[1]).status_code == 200
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(slow_app.post, f"/api/slow-projects?seconds={seconds}", headers=headers)
        time.sleep(0.5)  # the first has claimed the key
        started = time.monotonic()
        duplicate = slow_app.post(f"/api/slow-projects?seconds={seconds}", headers=headers)
        waited = time.monotonic() - started
        assert first.result().status_code == 201
    if database.engine.dialect.name == "postgresql":
        assert duplicate.status_code == 409
        assert duplicate.headers["retry-after"] == "1"
        assert (duplicate.json()["reason"], duplicate.json()["retry_after"]) == ("idempotency_key_in_flight", 1)
        assert IN_FLIGHT_WAIT_MS / 1000 <= waited < seconds
    else:
        assert (duplicate.status_code, duplicate.headers["idempotent-replayed"]) == (201, "true")
        assert duplicate.json() == first.result().json()
    assert count(session, Project) == 1
    replay = slow_app.post(f"/api/slow-projects?seconds={seconds}", headers=headers)
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")


def test_a_server_error_frees_the_key_and_leaves_nothing(
    slow_app: TestClient, session: Session, org_admin: tuple[User, dict]
) -> None:
    headers = {**org_admin[1], "Idempotency-Key": "breaks"}
    assert slow_app.post("/api/slow-projects?fail=true", headers=headers).status_code == 500
    assert (count(session, Project), count(session, IdempotencyKey)) == (0, 0)
    # The retry (same key, same request) runs again; it is not a replay of the 500.
    retry = slow_app.post("/api/slow-projects?fail=false", headers=headers)
    assert (retry.status_code, "idempotent-replayed" in retry.headers) == (201, False)


def test_an_error_is_not_stored_so_the_retry_runs_once_the_cause_is_gone(
    client: TestClient, session: Session, org: Organization, as_member: Callable
) -> None:
    """A 403 (a member, not an admin, of the organization) is not replayed: once the user is made
    an admin, the same key and request create the project, and that success is what replays."""
    user, headers = as_member(org, "member")
    headers = {**headers, "Idempotency-Key": "after-promotion"}
    refused = client.post("/api/projects", headers=headers, json={"name": "Apollo"})
    assert refused.status_code == 403
    assert count(session, IdempotencyKey) == 0
    session.execute(update(Membership).where(Membership.user_id == user.id).values(role="admin"))
    session.commit()
    created = client.post("/api/projects", headers=headers, json={"name": "Apollo"})
    assert (created.status_code, "idempotent-replayed" in created.headers) == (201, False)
    again = client.post("/api/projects", headers=headers, json={"name": "Apollo"})
    assert (again.headers["idempotent-replayed"], again.json()) == ("true", created.json())
    assert count(session, Project) == 1


def test_a_conflict_is_not_stored_either(client: TestClient, session: Session, as_user: Callable) -> None:
    _, admin = as_user(Role.ADMIN)
    headers = {**admin, "Idempotency-Key": "taken-email"}
    as_user(email="taken@example.com")
    assert client.post("/api/users", headers=headers, json={"email": "taken@example.com"}).status_code == 409
    assert count(session, IdempotencyKey) == 0


def test_an_expired_key_runs_the_request_again(
    client: TestClient, session: Session, container: Container, org_admin: tuple[User, dict]
) -> None:
    """Past IDEMPOTENCY_KEY_TTL_HOURS the key is free, purged or not yet; the purge deletes only
    expired keys."""
    assert container.settings.idempotency_key_ttl_hours == 24
    headers = {**org_admin[1], "Idempotency-Key": "old"}
    first = client.post("/api/projects", headers=headers, json={"name": "Apollo"})
    stored = session.scalars(select(IdempotencyKey)).one()
    assert timedelta(hours=23, minutes=59) < stored.expires_at - stored.created_at <= timedelta(hours=24)
    session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    again = client.post("/api/projects", headers=headers, json={"name": "Apollo"})
    assert (again.status_code, "idempotent-replayed" in again.headers) == (201, False)
    assert again.json()["id"] != first.json()["id"]
    assert count(session, IdempotencyKey) == 1  # the expired row gave way to the new one

    with container.unit_of_work(Actor.system()) as uow:
        assert uow.service(IdempotencyService).purge_expired(utcnow(), 10) == 0  # the new one is live
        assert uow.service(IdempotencyService).purge_expired(utcnow() + timedelta(hours=25), 10) == 1


VALID_KEYS = {
    '"8e03978e-40d5-43e8-bc93-6894a57f9324"': "8e03978e-40d5-43e8-bc93-6894a57f9324",
    "8e03978e-40d5-43e8-bc93-6894a57f9324": "8e03978e-40d5-43e8-bc93-6894a57f9324",  # bare, as most clients send
    '"with spaces and \\"quotes\\" and \\\\"': 'with spaces and "quotes" and \\',
    '"' + "k" * 255 + '"': "k" * 255,
    "k" * 255: "k" * 255,
}
INVALID_KEYS = {
    "empty string": '""',
    "unterminated": '"abc',
    "256 characters": '"' + "k" * 256 + '"',
    "256 bare characters": "k" * 256,
    "bad escape": '"a\\nb"',
    "space in a bare value": "a b",
    "tab inside": '"a\tb"',
    "DEL": '"a\x7fb"',
    "not ASCII": '"clé"',
}


@pytest.mark.parametrize("value", VALID_KEYS)
def test_a_key_is_a_structured_field_string_or_a_bare_value(
    value: str, client: TestClient, org_admin: tuple[User, dict]
) -> None:
    """The quoted and bare spellings of one key are the same key."""
    headers = org_admin[1]
    created = client.post("/api/projects", headers={**headers, "Idempotency-Key": value}, json={"name": "A"})
    assert created.status_code == 201, created.text
    key = VALID_KEYS[value]
    other_spelling = key if value.startswith('"') else f'"{key}"'
    if all(33 <= ord(character) <= 126 for character in key):  # a bare spelling exists
        retry = client.post("/api/projects", headers={**headers, "Idempotency-Key": other_spelling}, json={"name": "A"})
        assert retry.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize("case", INVALID_KEYS)
def test_a_malformed_key_is_400_naming_the_header(
    case: str, client: TestClient, session: Session, org_admin: tuple[User, dict]
) -> None:
    headers = [*org_admin[1].items(), ("Idempotency-Key", INVALID_KEYS[case])]
    response = client.post(
        "/api/projects", headers=[(k.encode(), v.encode("latin-1")) for k, v in headers], json={"name": "A"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["reason"] == "idempotency_key_invalid"
    assert [(error["key"], error["source"]) for error in problem["errors"]] == [("Idempotency-Key", "header")]
    assert count(session, Project) == 0


def test_the_header_twice_is_400(client: TestClient, session: Session, org_admin: tuple[User, dict]) -> None:
    headers = [*org_admin[1].items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = client.post("/api/projects", headers=headers, json={"name": "A"})
    assert (response.status_code, response.json()["reason"]) == (400, "idempotency_key_invalid")
    assert count(session, Project) == 0


def test_an_api_key_retry_shows_the_secret_again_but_the_database_never_holds_it_readable(
    client: TestClient, database: Database, as_user: Callable
) -> None:
    _, headers = as_user()
    idempotency_key = str(uuid4())
    headers = {**headers, "Idempotency-Key": idempotency_key}
    created = client.post("/api/api-keys", headers=headers, json={"name": "ci"})
    secret = created.json()["key"]
    replay = client.post("/api/api-keys", headers=headers, json={"name": "ci"})
    assert (replay.headers["idempotent-replayed"], replay.json()["key"]) == ("true", secret)
    assert client.get("/api/users/me", headers={"X-API-Key": secret}).status_code == 200  # the key works

    with database.engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(text("SELECT * FROM idempotency_keys"))]
        dump = repr(rows) + "".join(bytes(row["response_body"]).hex() for row in rows)
        dump += "".join(bytes(row["response_body"]).decode("latin-1") for row in rows)
    assert len(rows) == 1
    random_part = secret.removeprefix(created.json()["prefix"] + "_")  # it may hold "_" itself
    assert len(random_part) == 43  # token_urlsafe(32): not a short piece random bytes could hold
    for clear in (secret, random_part, idempotency_key, created.json()["name"] + '"'):
        assert clear not in dump
    assert b'"key"' not in bytes(rows[0]["response_body"])  # not even the JSON around it

    # Another Idempotency-Key does not open it: a new request runs (a new key, another secret).
    other = client.post("/api/api-keys", headers={**headers, "Idempotency-Key": "guess"}, json={"name": "ci"})
    assert other.json()["key"] != secret


def test_the_five_operations_declare_the_header_the_replay_header_and_their_errors(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    idempotent = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            if "Idempotency-Key" not in names:
                continue
            idempotent.add(operation["operationId"])
            assert method == "post", path
            parameter = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
            assert (parameter["in"], parameter["required"], parameter["schema"]["type"]) == ("header", False, "string")
            success = next(code for code in operation["responses"] if code.startswith("2"))
            assert "Idempotent-Replayed" in operation["responses"][success]["headers"]
            assert {"400", "409", "422"} <= set(operation["responses"])
            assert "Idempotency-Key" in operation["description"]
    assert idempotent == set(ROUTES)
    create_key = " ".join(document["paths"]["/api/api-keys"]["post"]["description"].split())
    assert "encrypted (AES-GCM)" in create_key
    assert "never stored readable" in create_key


def test_a_post_without_the_header_runs_no_statement_of_its_own(
    client: TestClient, database: Database, org_admin: tuple[User, dict]
) -> None:
    """The path without the header is the one every route takes: no claim, no stored response."""
    headers = org_admin[1]
    client.get("/api/users/me", headers=headers)  # first use of the key: last_used_at
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        assert client.post("/api/projects", headers=headers, json={"name": "Apollo"}).status_code == 201
        without = list(statements)
        statements.clear()
        keyed = {**headers, "Idempotency-Key": "k"}
        assert client.post("/api/projects", headers=keyed, json={"name": "Apollo"}).status_code == 201
        with_key = list(statements)
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert not any("idempotency_keys" in statement or "lock_timeout" in statement for statement in without)
    extra = [statement.split(maxsplit=1)[0].upper() for statement in with_key if statement not in without]
    if database.engine.dialect.name == "postgresql":  # the wait's bound, set and reset around the claim
        assert extra == ["SET", "INSERT", "SET", "UPDATE"]
    else:
        assert extra == ["INSERT", "UPDATE"]
