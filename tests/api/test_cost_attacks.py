"""Wrong secrets are cheap to refuse, for everyone else's sake: the key's stored check refuses them
without argon2, limits per client and per key prefix turn the refusals into 429s, a valid key is
never refused because of anyone's failures, and argon2 runs bounded and once per key."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from litestar.testing import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.bootstrap import Container, bootstrap
from app.domains.users.api_keys import secret_check
from app.domains.users.models import APIKey
from app.infrastructure.config import Settings
from app.infrastructure.hashing import APIKeyHasher
from tests.helpers import CHEAP_ARGON2, recorded, settings_for


class CountingArgon2:
    """Counts real argon2 verifications, and the most running at once."""

    def __init__(self, hasher: APIKeyHasher) -> None:
        self.real, self.calls, self.running, self.most = hasher._argon2, 0, 0, 0
        self._lock = threading.Lock()

    def verify(self, stored_hash: str, key: str) -> bool:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02)  # long enough for concurrent callers to overlap
            return self.real.verify(stored_hash, key)
        finally:
            with self._lock:
                self.running -= 1

    def hash(self, key: str) -> str:
        return self.real.hash(key)


@pytest.fixture
def limited(settings: Settings, database) -> Iterator[tuple[TestClient, Container, CountingArgon2]]:
    container = bootstrap(settings_for(settings.database_url, auth_failures_per_key=3, auth_failures_per_client=5))
    counting = CountingArgon2(container.hasher)
    container.hasher._argon2 = counting
    with TestClient(create_app(container=container)) as client:
        yield client, container, counting


def _wrong(key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def test_wrong_secrets_for_a_prefix_are_refused_without_hashing_once_over_the_limit(limited, as_user: Callable) -> None:
    client, _, counting = limited
    _, headers = as_user()
    key = headers["X-API-Key"]
    assert client.get("/api/users/me", headers=headers).status_code == 200  # verified once: remembered
    statuses = [client.get("/api/users/me", headers={"X-API-Key": _wrong(key)}).status_code for _ in range(8)]
    assert statuses == [401] * 3 + [429] * 5
    assert counting.calls == 1  # the genuine key once: no wrong secret reaches argon2
    refused = client.get("/api/users/me", headers={"X-API-Key": _wrong(key)})
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert refused.json()["status"] == 429
    # The key's owner is not locked out: its key is known, so checking it costs nothing.
    assert client.get("/api/users/me", headers=headers).status_code == 200


def test_one_client_spraying_wrong_secrets_is_limited_across_prefixes(limited, as_user: Callable) -> None:
    client, _, counting = limited
    keys = [as_user()[1]["X-API-Key"] for _ in range(4)]
    statuses = [client.get("/api/users/me", headers={"X-API-Key": _wrong(k)}).status_code for k in keys * 2]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    assert counting.calls == 0


def test_concurrent_first_uses_of_a_new_key_cost_one_argon2_and_runs_are_bounded(limited, as_user: Callable) -> None:
    client, container, counting = limited
    _, headers = as_user()
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: client.get("/api/users/me", headers=headers).status_code, range(32)))
    assert statuses == [200] * 32
    assert counting.calls == 1
    others = [as_user()[1] for _ in range(6)]  # six new keys at once: at most two argon2 runs together
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(lambda h: client.get("/api/users/me", headers=h).status_code, others)) == {200}
    assert counting.most <= container.settings.argon2_max_concurrent


def test_nobody_locks_out_a_valid_key_from_its_address_or_with_its_prefix(limited, as_user: Callable) -> None:
    """Every request of the TestClient comes from one address, as behind a proxy without
    X-Forwarded-For: an attacker with two keys of its own fails over and over on them and on a
    victim's prefix (shown in listings); the victim's key, never used yet, still works at once."""
    client, _, counting = limited
    own = [as_user()[1]["X-API-Key"] for _ in range(2)]
    _, victim = as_user()
    for key in [*own, victim["X-API-Key"]] * 10:
        assert client.get("/api/users/me", headers={"X-API-Key": _wrong(key)}).status_code in {401, 429}
    assert client.get("/api/users/me", headers={"X-API-Key": _wrong(own[0])}).status_code == 429
    assert counting.calls == 0
    assert client.get("/api/users/me", headers=victim).status_code == 200  # its first use, in this process
    assert [client.get("/api/users/me", headers={"X-API-Key": key}).status_code for key in own] == [200, 200]
    assert counting.calls == 3  # one argon2 per valid key, none for the 30 wrong secrets


def test_wrong_secrets_for_a_prefix_refused_once_cost_no_query(limited, as_user: Callable, database) -> None:
    client, _, counting = limited
    _, headers = as_user()
    key = headers["X-API-Key"]
    assert client.get("/api/users/me", headers={"X-API-Key": _wrong(key)}).status_code == 401  # reads the row
    with recorded(database) as seen:
        statuses = {client.get("/api/users/me", headers={"X-API-Key": _wrong(key)}).status_code for _ in range(5)}
    assert statuses == {401, 429}
    assert seen["statements"] == []  # refused from what the first refusal learnt: no session, no query
    assert client.get("/api/users/me", headers=headers).status_code == 200  # the right secret still passes
    assert counting.calls == 1


def test_a_key_from_before_secret_checks_is_limited_until_its_first_use_fills_the_check_in(
    limited, as_user: Callable, settings: Settings, database
) -> None:
    client, _, counting = limited
    _, headers = as_user()
    key = headers["X-API-Key"]
    with database.engine.begin() as connection:
        connection.execute(update(APIKey).values(secret_check=None))  # as the migration leaves old keys
    statuses = [client.get("/api/users/me", headers={"X-API-Key": _wrong(key)}).status_code for _ in range(4)]
    assert statuses == [401] * 3 + [429]
    assert counting.calls == 3  # argon2 is all such a key has, so its failures are limited before it
    assert client.get("/api/users/me", headers=headers).status_code == 429  # the price, until its first use

    fresh = bootstrap(settings_for(settings.database_url))  # another process, with clean counts
    with TestClient(create_app(container=fresh)) as other:
        assert other.get("/api/users/me", headers=headers).status_code == 200
    fresh.dispose()
    with Session(database.engine) as session:
        assert session.scalars(select(APIKey.secret_check)).one() == secret_check(key)
    calls = counting.calls
    assert client.get("/api/users/me", headers={"X-API-Key": _wrong(key)}).status_code == 429
    assert counting.calls == calls  # checked now: wrong secrets cost no argon2 any more


def test_a_refused_authentication_is_one_log_line_without_the_secret(
    limited, as_user: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _ = limited
    _, headers = as_user()
    wrong = _wrong(headers["X-API-Key"])
    with caplog.at_level(logging.INFO, logger="app.api.problems"):
        client.get("/api/users/me", headers={"X-API-Key": wrong})
    lines = [record.getMessage() for record in caplog.records if record.name == "app.api.problems"]
    assert len(lines) == 1
    assert "authentication refused (401" in lines[0]
    assert wrong not in lines[0]
    assert wrong[len("sk_0123456789abcdef_") :] not in caplog.text  # the secret (it may hold "_")


def test_the_argon2_concurrency_setting_reaches_the_hasher() -> None:
    assert CHEAP_ARGON2  # the suite's cheap parameters do not change the bound
    assert bootstrap(settings_for("sqlite:///unused.db", argon2_max_concurrent=3)).hasher._slots._value == 3
