"""The scale-out path, end to end: a real Prefect server, a process work pool, every deployment of
prefect.yaml as the registry declares it, a worker that runs `maintenance` in its own process
against the test database."""

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.domains.base.models import utcnow
from app.domains.users.models import APIKey, User
from app.infrastructure.config import PROJECT_ROOT, Settings
from app.workers.flows import FLOWS
from tests.helpers import CHEAP_ARGON2, backend_name

PREFECT = [sys.executable, "-m", "prefect"]


@pytest.fixture
def prefect_api(settings: Settings, prefect_harness: None) -> str:
    """The test harness's Prefect server (a real one, on loopback), shared with the other tests."""
    if backend_name(settings) != "postgresql":
        pytest.skip("run once, against the production database (PostgreSQL)")
    return PREFECT_API_URL.value()


def test_maintenance_runs_on_a_process_work_pool(
    settings: Settings,
    prefect_api: str,
    session: Session,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
) -> None:
    make_api_key(make_user())
    session.execute(update(APIKey).values(expires_at=utcnow() - timedelta(minutes=1)))
    session.commit()
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "APP_DIR": str(PROJECT_ROOT),
        "DATABASE_URL": settings.database_url,
        **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
    }

    def prefect(*args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*PREFECT, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    api = httpx.Client(base_url=prefect_api, timeout=10)
    api.post("/work_pools/", json={"name": "app-flows", "type": "process"}).raise_for_status()
    prefect("--no-prompt", "deploy", "--all")  # prefect.yaml, as an operator deploys it
    for name, entry in FLOWS.items():
        deployed = api.get(f"/deployments/name/{name}/{name}").json()
        assert deployed["entrypoint"] == entry.entrypoint
        assert deployed["work_pool_name"] == "app-flows"
        assert deployed["global_concurrency_limit"]["limit"] == entry.concurrency_limit
        crons = [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in deployed["schedules"]]
        assert crons == ([(entry.cron, "UTC")] if entry.cron else [])
    deployment = api.get("/deployments/name/maintenance/maintenance").json()
    triggered = api.post(f"/deployments/{deployment['id']}/create_flow_run", json={}).json()
    prefect("worker", "start", "--pool", "app-flows", "--run-once")  # a real worker, its own process

    run = api.get(f"/flow_runs/{triggered['id']}").json()
    assert run["state"]["type"] == "COMPLETED", run["state"]
    session.expire_all()
    assert session.query(APIKey).filter(APIKey.revoked_at.is_(None)).count() == 0  # the flow's effect
