"""A database that is down, frozen or failing is a 503 problem with Retry-After on every path, logged
in one line per request with its request id, the traceback once per outage; a bug stays a 500.
The same against a live server and a real cluster: tests/test_database_faults.py."""

import asyncio
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import psycopg2
import pytest
from advanced_alchemy import exceptions as aa_exc
from litestar.testing import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from app.api import problems
from app.api.main import create_app
from app.api.routes.health import READINESS_TIMEOUT_SECONDS, ReadinessProbe
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.api_keys import generate_api_key
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.postgres import DeadlineExceeded
from tests.helpers import settings_for

PROBLEMS_LOGGER = "app.api.problems"


@pytest.fixture(autouse=True)
def _new_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts outside any outage (the first failure logs its traceback)."""
    monkeypatch.setattr(problems, "outages", problems.OutageLog())


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections (the kernel does) and never answers: a frozen database."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"postgresql+psycopg2://app@127.0.0.1:{listener.getsockname()[1]}/app"


def _assert_unavailable(response, request_id: str | None = None) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "5"
    assert response.json()["detail"] == "the database is unavailable, retry later"
    if request_id is not None:
        assert response.headers["x-request-id"] == request_id


def test_a_frozen_database_is_a_503_within_the_connect_timeout_and_readiness_within_a_second(
    silent_server: str,
) -> None:
    settings = settings_for(silent_server, database_connect_timeout_seconds=1)
    threads_before = _readiness_threads()
    headers = {"X-API-Key": generate_api_key().key}
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200  # liveness touches no database
        for _ in range(3):
            started = time.monotonic()
            response = client.get("/health/ready")
            assert response.status_code == 503
            assert time.monotonic() - started < 1
        assert response.json()["detail"] == "database unreachable: OperationalError"
        for method in ("GET", "PATCH"):
            started = time.monotonic()
            response = client.request(method, "/api/users/me", headers=headers, json={"first_name": "A"})
            _assert_unavailable(response)
            assert time.monotonic() - started < 2
    assert _readiness_threads() - threads_before <= 1  # one probe thread for the app, whatever it waited


def _readiness_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("readiness"))


def test_readiness_answers_within_its_timeout_and_never_piles_up_probes() -> None:
    """A probe stuck longer than the answer's timeout: every caller gets its 503 in time, and they
    share the one probe running instead of each taking a thread."""
    pings: list[float] = []
    release = threading.Event()

    class StuckDatabase:
        def ping(self) -> None:
            pings.append(time.monotonic())
            release.wait(5)

    probe = ReadinessProbe(StuckDatabase())  # type: ignore[arg-type]

    async def callers() -> list[tuple[str, str] | None]:
        first = await asyncio.gather(*(probe.failure() for _ in range(5)))
        second = await probe.failure()  # the probe still runs: no second one
        return [*first, second]

    started = time.monotonic()
    answers = asyncio.run(callers())
    elapsed = time.monotonic() - started
    release.set()
    assert all(answer is not None and answer[0].startswith("no answer within") for answer in answers)
    assert elapsed < 2 * READINESS_TIMEOUT_SECONDS + 0.2
    assert len(pings) == 1


def _operational() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", None, psycopg2.OperationalError("server closed the connection"))


def _wrapped(cause: BaseException) -> aa_exc.IntegrityError:
    """An outage raised from another error (as advanced-alchemy's wrappers did before the
    repositories set `wrap_exceptions=False`): still an outage."""
    error = aa_exc.IntegrityError(f"An integrity error occurred: {cause}")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error",
    [
        _operational(),
        _wrapped(_operational()),
        sa_exc.TimeoutError("QueuePool limit of size 4 overflow 0 reached, connection timed out"),
        sa_exc.InterfaceError("SELECT 1", None, psycopg2.InterfaceError("connection already closed")),
        sa_exc.InterfaceError("SELECT 1", None, Exception("gone"), connection_invalidated=True),
        sa_exc.DisconnectionError("the connection was dropped"),
        psycopg2.InterfaceError("connection already closed"),  # a driver error SQLAlchemy did not wrap
        DeadlineExceeded("the database did not answer within 6 s (waiting for a statement)"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_every_kind_of_outage_is_a_503_problem(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def fail(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(APIKeyService, "authenticate", fail)
    response = client.get("/api/users/me", headers={"X-API-Key": generate_api_key().key})
    _assert_unavailable(response)


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.InterfaceError("SELECT ?", None, sqlite3.InterfaceError("Error binding parameter 1")),
        _wrapped(sa_exc.ProgrammingError("SELECT", None, psycopg2.ProgrammingError("syntax error"))),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_database_bug_is_still_a_500(client: TestClient, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def fail(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(APIKeyService, "authenticate", fail)
    assert client.get("/api/users/me", headers={"X-API-Key": generate_api_key().key}).status_code == 500


def test_an_outage_at_commit_is_a_503_and_nothing_is_written(
    client: TestClient, as_user: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, headers = as_user(first_name="Before")
    original = UnitOfWork.commit

    def commit_fails(self: UnitOfWork) -> None:
        raise _operational()

    monkeypatch.setattr(UnitOfWork, "commit", commit_fails)
    _assert_unavailable(client.patch("/api/users/me", headers=headers, json={"first_name": "After"}))
    monkeypatch.setattr(UnitOfWork, "commit", original)
    assert client.get("/api/users/me", headers=headers).json()["first_name"] == "Before"


def test_one_line_per_failure_with_the_request_id_and_one_traceback_per_outage(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(*_: object, **__: object) -> None:
        raise _wrapped(_operational())

    monkeypatch.setattr(APIKeyService, "authenticate", fail)
    key = generate_api_key().key
    sent = ["req-1", "req.2:abc/DEF+=", "x" * 129, "spaces are not sane", ""]
    with caplog.at_level(logging.WARNING, logger=PROBLEMS_LOGGER):
        responses = [client.get("/api/users/me", headers={"X-API-Key": key, "X-Request-ID": rid}) for rid in sent]
    records = [record for record in caplog.records if record.name == PROBLEMS_LOGGER]
    assert len(records) == len(sent)  # one line each
    used = [response.headers["x-request-id"] for response in responses]
    assert used[:2] == sent[:2]
    assert all(len(rid) == 32 and rid not in sent for rid in used[2:])  # generated
    for rid, record in zip(used, records, strict=True):
        _assert_unavailable(responses[used.index(rid)], rid)
        assert record.request_id == rid  # a field of the record, which each format prints
        assert record.getMessage().startswith(
            "database unavailable: GET /api/users/me: OperationalError: server closed the connection"
        )
    with_traceback = [record for record in records if "Traceback (most recent call last)" in record.getMessage()]
    assert with_traceback == records[:1]
    assert all("\n" not in record.getMessage() for record in records[1:])


def test_an_unexpected_database_error_is_logged_without_the_statement_values(
    client: TestClient, as_user: Callable, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """psycopg2 binds values on the client and PostgreSQL's messages quote them: the log shows the
    statement with its placeholders, the error's codes and the stack, not the values."""
    _, headers = as_user()
    secret = "-".join(["katherine", "johnson"])

    def current(self: UserService) -> None:
        self.session.execute(text("SELECT CAST(:value AS integer) FROM no_such_table"), {"value": secret})

    monkeypatch.setattr(UserService, "current", current)
    with caplog.at_level(logging.WARNING, logger=PROBLEMS_LOGGER):
        response = client.get("/api/users/me", headers=headers)
    assert response.status_code in {500, 503}  # SQLite calls a missing table an OperationalError
    assert "no_such_table" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text
    assert secret not in caplog.text
