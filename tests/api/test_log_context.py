"""One request id on every record a request causes, whatever thread logs it: a sync handler or a
service in the thread pool, the unhandled-error line, a database outage found while connecting;
none on a record logged after the request. Both formats print it."""

import json
import logging
import threading
from collections.abc import Callable

import pytest
from litestar.testing import TestClient

from app.api.main import create_app, logging_config
from app.domains.users.api_keys import generate_api_key
from app.domains.users.service import UserService
from app.infrastructure.config import Settings
from app.infrastructure.log_context import log_fields
from app.infrastructure.log_format import JsonFormatter, ReadableFormatter
from tests.helpers import settings_for

PROBE_LOGGER = "app.probe"


def test_a_record_logged_in_a_sync_handlers_thread_carries_the_request_id(
    client: TestClient, as_user: Callable, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, headers = as_user()
    original = UserService.current
    threads: list[threading.Thread] = []

    def current(self: UserService) -> object:
        threads.append(threading.current_thread())
        logging.getLogger(PROBE_LOGGER).info("loading the current user")
        return original(self)

    monkeypatch.setattr(UserService, "current", current)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/users/me", headers={**headers, "X-Request-ID": "in-thread-1"})
        logging.getLogger(PROBE_LOGGER).info("after the request")
    assert response.status_code == 200, response.text
    assert threads
    assert threads[0] is not threading.main_thread()
    probe, after = [record for record in caplog.records if record.name == PROBE_LOGGER]
    assert probe.request_id == "in-thread-1"
    assert not hasattr(after, "request_id")  # the context ends with the request
    access = [record for record in caplog.records if record.name == "app.access"]
    assert [record.request_id for record in access] == ["in-thread-1"]
    assert json.loads(JsonFormatter().format(probe))["request_id"] == "in-thread-1"
    assert ReadableFormatter().format(probe).endswith("loading the current user request_id=in-thread-1")


def test_the_unhandled_error_line_carries_the_request_id(
    client: TestClient, as_user: Callable, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, headers = as_user()

    def current(self: UserService) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(UserService, "current", current)
    with caplog.at_level(logging.ERROR, logger="app.api.problems"):
        response = client.get("/api/users/me", headers={**headers, "X-Request-ID": "bug-1"})
    assert response.status_code == 500
    (record,) = [record for record in caplog.records if record.name == "app.api.problems"]
    assert record.getMessage().startswith("unhandled error on GET /api/users/me")
    assert record.request_id == "bug-1"


def test_a_connection_failure_logged_while_connecting_carries_the_request_id(settings: Settings) -> None:
    """The connection gate's line is logged by the thread that tried to connect, deep below the
    handler: a refused connection (nothing listens on port 1). A second app configures the
    process's logging again (caplog's handler goes): its records are collected on `app`."""
    app = create_app(settings_for("postgresql+psycopg2://app@127.0.0.1:1/app"))
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("app").addHandler(collect)
    try:
        with TestClient(app) as client:
            key = generate_api_key().key
            response = client.get("/api/users/me", headers={"X-API-Key": key, "X-Request-ID": "outage-1"})
    finally:
        logging.getLogger("app").removeHandler(collect)
        logging_config(settings).configure()  # the tests that follow log as development does
    assert response.status_code == 503
    lines = {record.getMessage().split(":")[0]: record for record in records}
    assert lines["database connection failed"].request_id == "outage-1"
    assert lines["database unavailable"].request_id == "outage-1"


def test_fields_nest_and_end_with_their_block(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger(PROBE_LOGGER)
    with caplog.at_level(logging.INFO, logger=PROBE_LOGGER):
        with log_fields(job_id="j1"):
            with log_fields(request_id="r1", flow_run_id=None):
                logger.info("inner")
            logger.info("outer")
        logger.info("none")
    inner, outer, none = caplog.records
    assert (inner.job_id, inner.request_id) == ("j1", "r1")
    assert not hasattr(inner, "flow_run_id")
    assert outer.job_id == "j1"
    assert not hasattr(outer, "request_id")
    assert not hasattr(none, "job_id")
    assert ReadableFormatter().format(inner).endswith("inner request_id=r1 job_id=j1")
    assert {"request_id": "r1", "job_id": "j1"}.items() <= json.loads(JsonFormatter().format(inner)).items()
