"""Request ids and the access log: `X-Request-ID` on every response, one access record per request
(one JSON line in production), and no credential, cookie, signature or query string in anything the
app logs, even at DEBUG and during a database outage."""

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import exc as sa_exc

from app.api import problems
from app.api.main import create_app, logging_config
from app.domains.users.api_keys import generate_api_key
from app.domains.users.models import User
from app.domains.users.service import APIKeyService
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from app.infrastructure.log_format import BackgroundStreamHandler, JsonFormatter, ReadableFormatter
from tests.clerk_helpers import ALLOWED_ORIGIN, ISSUER, WEBHOOK_SECRET, SigningKey, session_claims, svix_headers
from tests.helpers import settings_for

KEY = SigningKey("ins_request_log")
GENERATED = re.compile(r"[0-9a-f]{32}")
ACCESS_FIELDS = {"ts", "level", "logger", "msg", "request_id", "method", "path", "status", "latency_ms", "user_id"}
CLIENT_LOGGERS = ("httpx", "httpcore")  # the test client's own log lines (they name the full URL)


@pytest.mark.parametrize("given", ["abc-123", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "req.2:abc/DEF+=", "x" * 128])
def test_a_sane_request_id_is_echoed(client: TestClient, given: str) -> None:
    assert client.get("/health", headers={"X-Request-ID": given}).headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    ["x" * 129, "has space", "tab\there", "nul\x00byte", "bell\x07", "newline\nforged: yes", "é", "<script>"],
)
def test_an_insane_request_id_is_replaced(app: Litestar, given: str) -> None:
    """Sent as raw bytes (an HTTP client refuses some of them): the app answers with a new id."""
    status, headers = _raw_get(app, "/health", [(b"x-request-id", given.encode())])
    assert status == 200
    assert GENERATED.fullmatch(headers[b"x-request-id"].decode())


def test_every_response_carries_a_request_id(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    responses = {
        200: client.get("/api/users/me", headers=headers),
        401: client.get("/api/users/me"),
        404: client.get("/no/such/route"),
        400: client.get("/api/users", params={"limit": "many"}, headers=headers),
        405: client.put("/health"),
    }
    ids = set()
    for status, response in responses.items():
        assert response.status_code == status, response.text
        assert GENERATED.fullmatch(response.headers["x-request-id"])
        assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]  # once
        ids.add(response.headers["x-request-id"])
    assert len(ids) == len(responses)


def test_one_access_record_per_request_with_the_user_id(
    client: TestClient, as_user: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    user, headers = as_user()
    with caplog.at_level(logging.INFO, logger="app.access"):
        ok = client.get("/api/users/me?search=secret", headers={**headers, "X-Request-ID": "trace-1"})
        refused = client.get("/api/users/me")
    records = [record for record in caplog.records if record.name == "app.access"]
    assert [(r.request_id, r.method, r.path, r.status, r.user_id) for r in records] == [
        ("trace-1", "GET", "/api/users/me", 200, user.id),
        (refused.headers["x-request-id"], "GET", "/api/users/me", 401, None),
    ]
    assert ok.status_code == 200
    assert all(0 < record.latency_ms < 10_000 for record in records)


@pytest.fixture
def production(settings: Settings, database: Database) -> Iterator[Litestar]:
    """The app as production configures its logs (JSON lines), with Clerk and its webhook enabled.
    Production refuses SQLite at validation, so the environment is set on validated settings."""
    clerk = settings_for(
        settings.database_url,
        clerk_issuer=ISSUER,
        clerk_jwt_key=KEY.public_pem,
        clerk_authorized_parties=[ALLOWED_ORIGIN],
        clerk_webhook_signing_secret=WEBHOOK_SECRET,
    )
    production = clerk.model_copy(update={"environment": "production"})
    yield create_app(production)
    logging_config(settings).configure()  # the tests that follow log as development does


def _written_lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    """What the app's log handler wrote to stderr, parsed: each line must be one JSON object."""
    logging.getHandlerByName("queue_listener").flush()
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    return [json.loads(line) for line in lines]


def test_production_writes_one_json_line_per_request(
    production: Litestar,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = production
    user = make_user()
    key = make_api_key(user)
    with TestClient(app) as client:
        _written_lines(capsys)  # start-up lines
        client.get("/api/users/me?token=abc", headers={"X-API-Key": key, "X-Request-ID": "prod-1"})
        client.get("/nope")
        entries = [entry for entry in _written_lines(capsys) if entry["logger"] == "app.access"]
    assert [set(entry) for entry in entries] == [ACCESS_FIELDS, ACCESS_FIELDS]
    first, second = entries
    assert first["request_id"] == "prod-1"
    assert (first["method"], first["path"], first["status"], first["user_id"]) == (
        "GET",
        "/api/users/me",
        200,
        str(user.id),
    )
    assert (second["path"], second["status"], second["user_id"]) == ("/nope", 404, None)
    assert first["level"] == "INFO"
    assert first["msg"].startswith("GET /api/users/me 200 ")
    assert isinstance(first["latency_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["ts"])


def test_a_path_cannot_forge_a_line_in_the_readable_format() -> None:
    """Request paths are decoded (`%0a` is a newline); JSON escapes them, and so must the dev format."""
    record = logging.LogRecord("app.access", logging.INFO, "", 0, "GET %s 404", ("/x\nINFO forged\x00",), None)
    line = ReadableFormatter().format(record)
    assert "\n" not in line
    assert "\x00" not in line
    assert line.endswith("GET /x\\x0aINFO forged\\x00 404")


def test_a_bad_log_call_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    handler = BackgroundStreamHandler()
    handler.setFormatter(JsonFormatter())
    try:
        handler.handle(logging.LogRecord("lib", logging.INFO, "", 0, "value %d", ("x",), None))
        odd = logging.LogRecord("lib", logging.INFO, "", 0, "saved", (), None)
        odd.path = Path("var/report.csv")  # a library's `extra` with a value JSON cannot hold as such
        handler.handle(odd)
        handler.flush()
    finally:
        handler.close()
    written = capsys.readouterr().err
    assert "--- Logging error ---" in written  # logging's own report of the bad call
    assert json.loads(written.strip().splitlines()[-1])["path"] == "var/report.csv"


def test_no_secret_reaches_the_logs(
    production: Litestar,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Credentials on successful and refused requests, a webhook's signature, a query-string token
    and a database outage, all logged at DEBUG: none of the secrets appears in the records or in the
    JSON lines written (the test client's own lines, which quote the URL, are not the app's)."""
    app = production
    monkeypatch.setattr(problems, "outages", problems.OutageLog())  # the outage logs its traceback
    user = make_user(clerk_id="user_logs")
    api_key = make_api_key(user)
    wrong_key = generate_api_key().key
    token = KEY.mint(**session_claims(sub="user_logs"))
    webhook_body = json.dumps({"type": "session.created", "data": {"id": "sess_1"}, "object": "event"})
    signed = svix_headers(webhook_body)
    query_token = "qs-secret-4242"
    secrets = {
        "api key": api_key,
        "api key secret part": api_key.split("_", 2)[2],  # sk_<prefix>_<secret>
        "wrong api key": wrong_key,
        "session token": token,
        "token signature": token.rsplit(".", 1)[1],
        "webhook secret": WEBHOOK_SECRET.removeprefix("whsec_"),
        "webhook signature": signed["svix-signature"].removeprefix("v1,"),
        "query token": query_token,
    }
    assert len(secrets["api key secret part"]) == 43
    caplog.set_level(logging.DEBUG)
    with TestClient(app) as client:
        _written_lines(capsys)
        statuses = [
            client.get(f"/api/users/me?token={query_token}", headers={"X-API-Key": api_key}).status_code,
            client.get("/api/users/me", headers={"X-API-Key": wrong_key}).status_code,
            client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"}).status_code,
            client.get("/api/users/me", headers={"Authorization": f"Bearer {token}x"}).status_code,
            client.get("/api/users/me", headers={"Cookie": f"__session={token}"}).status_code,
            client.post(
                "/webhooks/clerk", content=webhook_body, headers={**signed, "content-type": "application/json"}
            ).status_code,
            client.post(
                "/webhooks/clerk",
                content=webhook_body + " ",
                headers={**signed, "content-type": "application/json"},
            ).status_code,
        ]

        def outage(*_: object, **__: object) -> None:
            raise sa_exc.OperationalError("SELECT 1", None, psycopg2.OperationalError("server closed the connection"))

        monkeypatch.setattr(APIKeyService, "authenticate", outage)
        statuses.append(client.get(f"/api/users/me?token={query_token}", headers={"X-API-Key": api_key}).status_code)
        written = _written_lines(capsys)
    assert statuses == [200, 401, 200, 401, 200, 200, 401, 503]
    app_records = [record for record in caplog.records if not record.name.startswith(CLIENT_LOGGERS)]
    logged = "\n".join(caplog.handler.format(record) for record in app_records)
    written_text = "\n".join(json.dumps(entry) for entry in written if not entry["logger"].startswith(CLIENT_LOGGERS))
    assert "database unavailable" in logged  # the outage was logged, with its traceback
    assert "Traceback" in logged
    assert sum(entry["logger"] == "app.access" for entry in written) == len(statuses)
    for name, secret in secrets.items():
        assert secret not in logged, name
        assert secret not in written_text, name


def _raw_get(app: Litestar, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[bytes, bytes]]:
    """One GET straight through the ASGI interface: any header bytes, no HTTP client in between."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"])
