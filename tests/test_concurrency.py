"""Under far more concurrent requests than pooled connections, a live server never deadlocks.

Sync handlers run in a thread pool; a connection held across a hop between the event loop and that
pool can starve it (see docs/architecture.md). Only a real server under real concurrency shows it.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

import httpx
import pytest
from sqlalchemy import func, select, text

from app.domains.organizations.models import Membership, Organization
from app.domains.projects.models import Project
from app.domains.users.models import User
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from tests.clerk_helpers import ALLOWED_ORIGIN, ISSUER, WEBHOOK_SECRET, SigningKey, organization_claim
from tests.helpers import CHEAP_ARGON2, backend_name, wait_until_healthy

THREADS = 4  # a small pool makes starvation easy to hit
ME_REQUESTS, LIST_REQUESTS = 250, 50
CLERK_KEY = SigningKey("ins_concurrency")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server(settings: Settings, tmp_path) -> Iterator[str]:
    with serving(settings, tmp_path) as base_url:
        yield base_url


@contextmanager
def serving(settings: Settings, cwd: object, stderr: IO[bytes] | None = None, **overrides: str) -> Iterator[str]:
    """The app under a real uvicorn on a free port (4 threads), on the settings' database.
    `overrides` are environment variables (`CLERK_JWT_KEY=""` for the JWKS); `stderr` takes its logs."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "WORKER_THREADS": str(THREADS),
        "DATABASE_POOL_SIZE": str(THREADS),
        "DATABASE_POOL_TIMEOUT": "30",
        "LOG_LEVEL": "WARNING",
        "CLERK_ISSUER": ISSUER,
        "CLERK_JWT_KEY": CLERK_KEY.public_pem,
        "CLERK_AUTHORIZED_PARTIES": ALLOWED_ORIGIN,
        "CLERK_WEBHOOK_SIGNING_SECRET": WEBHOOK_SECRET,
        **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
        **overrides,
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.api.main:create_app", "--port", str(port)]
    server = subprocess.Popen([*command, "--no-access-log"], env=env, cwd=cwd, stderr=stderr)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(server, base_url)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a server stuck in a deadlock ignores SIGTERM
            server.kill()
            server.wait()


READS = [("GET", "/api/users/me")] * ME_REQUESTS + [("GET", "/api/users?limit=5")] * LIST_REQUESTS
WRITES = [("PATCH", "/api/users/me")] * 50


async def _burst(base_url: str, headers: dict[str, str], requests=READS) -> tuple[Counter, float]:
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:

        async def status(number: int, method: str, path: str) -> int | str:
            body = {"first_name": f"n{number}"} if method == "PATCH" else None
            try:
                return (await client.request(method, path, json=body)).status_code
            except httpx.HTTPError as error:
                return type(error).__name__

        started = time.perf_counter()
        statuses = await asyncio.gather(*(status(number, *request) for number, request in enumerate(requests)))
        return Counter(statuses), time.perf_counter() - started


def test_concurrent_api_key_requests_all_succeed(live_server: str, settings: Settings, as_user: Callable) -> None:
    _, headers = as_user()
    statuses, elapsed = asyncio.run(_burst(live_server, headers))
    total = ME_REQUESTS + LIST_REQUESTS
    print(f"\n{backend_name(settings)}: {total} concurrent API-key requests, {THREADS} threads: {elapsed:.2f} s")
    assert statuses == Counter({200: total})
    assert _connections_idle_in_transaction(settings) == 0


def test_concurrent_first_requests_of_a_new_clerk_user(
    live_server: str, settings: Settings, database: Database
) -> None:
    """Every request is the user's first sight, all at once: one row, and every request succeeds."""
    headers = {"Authorization": f"Bearer {CLERK_KEY.mint(sub='user_stampede')}"}
    statuses, elapsed = asyncio.run(_burst(live_server, headers))
    total = ME_REQUESTS + LIST_REQUESTS
    print(f"\n{backend_name(settings)}: {total} concurrent first-sight session requests: {elapsed:.2f} s")
    assert statuses == Counter({200: total})
    with database.session() as session:
        assert session.query(User).filter(User.clerk_id == "user_stampede").count() == 1
    assert _connections_idle_in_transaction(settings) == 0


@pytest.mark.parametrize("credential", ["api_key", "clerk_token"])
def test_concurrent_writes_and_reads_all_succeed(
    live_server: str, settings: Settings, as_user: Callable, credential: str
) -> None:
    """Writes hold a connection until their commit: with reads mixed in, nothing waits forever."""
    _, headers = as_user(clerk_id="user_writer")
    if credential == "clerk_token":
        headers = {"Authorization": f"Bearer {CLERK_KEY.mint(sub='user_writer')}"}
    requests = WRITES + READS[:100] + READS[-50:]  # writes, /me and lists, all at once
    statuses, elapsed = asyncio.run(_burst(live_server, headers, requests))
    total = len(requests)
    print(f"\n{backend_name(settings)}: {total} concurrent {credential} requests, 50 writes: {elapsed:.2f} s")
    assert statuses == Counter({200: total})
    assert _connections_idle_in_transaction(settings) == 0


def _connections_idle_in_transaction(settings: Settings) -> int:
    if backend_name(settings) != "postgresql":
        return 0
    database = Database(settings)
    with database.engine.connect() as connection:
        stuck = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'idle in transaction'"
            )
        )
    database.dispose()
    return stuck


async def _stampede(base_url: str, requests: list[tuple[dict[str, str], str, str]]) -> Counter:
    """Each request with its own headers, all at once: the statuses (or the client's error)."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def status(headers: dict[str, str], method: str, path: str) -> int | str:
            body = {"name": "first"} if method == "POST" else None
            try:
                return (await client.request(method, path, json=body, headers=headers)).status_code
            except httpx.HTTPError as error:
                return type(error).__name__

        return Counter(await asyncio.gather(*(status(*request) for request in requests)))


def test_concurrent_first_sights_of_an_organization_from_session_tokens(
    live_server: str, settings: Settings, database: Database
) -> None:
    """Many users, none known, whose tokens name the same unknown organization, each reading and
    writing at once (reads autocommit, writes are transactions): one organization, one membership
    per user, and no request fails."""
    users = [f"user_crowd{number}" for number in range(8)]
    headers = {
        user: {"Authorization": f"Bearer {CLERK_KEY.mint(sub=user, o=organization_claim('org_crowd', 'admin'))}"}
        for user in users
    }
    requests = [
        (headers[user], method, path)
        for user in users
        for method, path in [("GET", "/api/projects"), ("POST", "/api/projects"), ("GET", "/api/organizations")] * 5
    ]
    statuses = asyncio.run(_stampede(live_server, requests))
    assert statuses == Counter({200: len(users) * 10, 201: len(users) * 5})
    with database.session() as session:
        [organization] = session.scalars(select(Organization).where(Organization.clerk_id == "org_crowd")).all()
        memberships = session.scalars(select(Membership).where(Membership.organization_id == organization.id)).all()
        assert len(memberships) == len(users)
        assert session.scalar(select(func.count()).select_from(Project)) == len(users) * 5
    assert _connections_idle_in_transaction(settings) == 0
