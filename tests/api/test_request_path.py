"""The request path's budget: one statement for /me, one session, closed in the worker thread."""

import gc
from collections.abc import Callable

from litestar.testing import TestClient

from app.infrastructure.database import Database
from tests.helpers import recorded


def test_me_with_an_api_key_costs_one_statement(client: TestClient, as_user: Callable, database: Database) -> None:
    _, headers = as_user()
    assert client.get("/api/users/me", headers=headers).status_code == 200  # first use: writes last_used_at
    with recorded(database) as seen:
        for _ in range(3):
            assert client.get("/api/users/me", headers=headers).status_code == 200
    assert seen["statements"] == ["SELECT"] * 3  # the key with its user; /me reads nothing more
    if database.engine.dialect.name == "postgresql":  # a read needs no transaction: no BEGIN, no COMMIT
        assert seen["autocommit"] == ["True"] * 3  # (SQLite's driver begins none before a SELECT)
    assert len(seen["checkin_threads"]) == 3  # one session, one connection per request
    assert all(name.startswith("worker") for name in seen["checkin_threads"]), seen["checkin_threads"]


def test_a_write_commits_in_the_same_thread_and_session(
    client: TestClient, as_user: Callable, database: Database
) -> None:
    _, headers = as_user()
    client.get("/api/users/me", headers=headers)
    with recorded(database) as seen:
        assert client.patch("/api/users/me", headers=headers, json={"first_name": "Ada"}).status_code == 200
    assert seen["statements"] == ["SELECT", "UPDATE"]  # authenticate, change; then one commit
    if database.engine.dialect.name == "postgresql":
        assert seen["autocommit"] == ["False", "False"]  # one transaction
    assert len(seen["checkin_threads"]) == 1
    assert seen["checkin_threads"][0].startswith("worker")


def test_a_refused_request_rolls_back_everything(client: TestClient, as_user: Callable, database: Database) -> None:
    """A 403 raised after a flush leaves nothing behind: the unit of work rolls back."""
    _, headers = as_user()
    response = client.patch("/api/users/me", headers=headers, json={"first_name": "Eve", "role": "admin"})
    assert response.status_code == 403
    assert client.get("/api/users/me", headers=headers).json()["first_name"] != "Eve"


def test_after_the_database_drops_every_connection_one_request_fails_then_all_succeed(
    client: TestClient, as_user: Callable, database: Database, settings
) -> None:
    """Without pre-ping, a dead connection is found by the request that uses it: that request
    gets a 503 problem, the pool is invalidated as a whole, and the next requests reconnect."""
    if database.engine.dialect.name != "postgresql":
        return
    _, headers = as_user()
    for _ in range(5):  # check out and return several pooled connections
        assert client.get("/api/users/me", headers=headers).status_code == 200
    killer = Database(settings)
    with killer.engine.connect() as connection:
        connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    killer.dispose()
    statuses = [client.get("/api/users/me", headers=headers).status_code for _ in range(10)]
    assert statuses.count(503) <= 1, statuses
    assert set(statuses) <= {200, 503}
    assert statuses[-1] == 200


def test_start_up_objects_are_frozen_out_of_the_collector(client: TestClient) -> None:
    """`gc.freeze` at start-up: full collections no longer walk every module, route and model."""
    assert gc.get_freeze_count() > 10_000
