"""README's work-pool path, run as written: the commands of its "Several machines" block, word for
word, in a shell, against a real Prefect server (the test harness's) and the test database
(PostgreSQL, as ENVIRONMENT=production requires), with only the settings the block exports. Then
README's "run one now" command, twice: a real worker runs `maintenance/pool` once, in its own
process, against the intended database (an expired key revoked), and cancels the overlapping run."""

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.domains.base.models import utcnow
from app.domains.users.models import APIKey, User
from app.infrastructure.config import PROJECT_ROOT, Settings
from app.workers import HEARTBEAT_SECONDS, crash_detection
from app.workers.flows import FLOWS
from tests.helpers import backend_name
from tests.workers.conftest import counts_artifact

SECTION = "### Several machines: a process work pool\n"


def readme_blocks() -> tuple[dict[str, str], list[str], list[str]]:
    """The block's exported settings (name -> README's example value) and commands, and the
    "run one now" block's commands: README's text, exactly."""
    section = (PROJECT_ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    setup, run_now = re.findall(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    exports: dict[str, str] = {}
    commands: list[str] = []
    for line in setup.splitlines():
        if not line or line.startswith("#"):
            continue
        if exported := re.fullmatch(r"export ([A-Z_]+)=(\S+)", line):
            exports[exported[1]] = exported[2]
        else:
            commands.append(line)
    return exports, commands, run_now.splitlines()


@pytest.fixture
def prefect_api(settings: Settings, prefect_harness: None) -> str:
    """The test harness's Prefect server (a real one, on loopback), shared with the other tests."""
    if backend_name(settings) != "postgresql":
        pytest.skip("ENVIRONMENT=production: PostgreSQL only")
    if shutil.which("uv") is None:
        pytest.skip("README's commands run through uv, which is not on PATH")
    return PREFECT_API_URL.value()


def test_readmes_work_pool_commands_run_as_written(
    settings: Settings,
    prefect_api: str,
    session: Session,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
) -> None:
    exports, commands, run_now = readme_blocks()
    # Every setting a worker machine needs, and nothing this test's process would leak in.
    ours = {
        "PREFECT_API_URL": prefect_api,
        "ENVIRONMENT": "production",
        "DATABASE_URL": settings.database_url,
        "CLERK_SECRET_KEY": "sk_test_not_used_by_maintenance",
        "APP_DIR": str(PROJECT_ROOT),
    }
    assert exports.keys() == ours.keys()
    assert exports["APP_DIR"] == "$PWD"  # run from the project root, as the block says
    assert all(command.startswith("uv run prefect ") for command in commands + run_now), commands + run_now
    setting_names = {name.upper() for name in Settings.model_fields}
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in setting_names and not (name.startswith("PREFECT_") and name != "PREFECT_HOME")
    } | ours

    make_api_key(make_user())
    session.execute(update(APIKey).values(expires_at=utcnow() - timedelta(minutes=1)))
    session.commit()

    def shell(command: str) -> str:
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", command], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
        print(f"{command}: {time.monotonic() - started:.1f} s")
        return done.stdout

    print()
    *setup, start_worker = commands
    for command in setup:
        shell(command)

    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("app-flows")
        assert (pool.type, pool.concurrency_limit) == ("process", 2)
        for name, entry in FLOWS.items():
            deployed = client.read_deployment_by_name(f"{name}/pool")
            assert deployed.entrypoint == entry.entrypoint
            assert deployed.work_pool_name == "app-flows"
            assert deployed.global_concurrency_limit
            assert deployed.global_concurrency_limit.limit == entry.concurrency_limit
            assert deployed.concurrency_options
            assert deployed.concurrency_options.collision_strategy == "CANCEL_NEW"
            assert deployed.job_variables == {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}}
            assert deployed.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}
            ]
            assert [(s.schedule.cron, s.schedule.timezone) for s in deployed.schedules] == (  # type: ignore[union-attr]
                [(entry.cron, "UTC")] if entry.cron else []
            )
        [automation] = client.read_automations_by_name(crash_detection.NAME)  # the build step's
        assert automation.trigger.match_related.root["prefect.resource.name"] == sorted(FLOWS)  # type: ignore[union-attr]

    # Triggered twice before any worker runs: the worker takes both, and one is cancelled.
    [run_command] = run_now
    runs = [UUID(re.findall(r"UUID: ([0-9a-f-]{36})", shell(run_command))[0]) for _ in range(2)]
    worker = subprocess.Popen(
        ["bash", "-c", start_worker],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        with get_client(sync_client=True) as client:
            while True:
                states = [client.read_flow_run(run).state for run in runs]
                if all(state and state.is_final() for state in states):
                    break
                assert time.monotonic() - started < 180, states
                time.sleep(1)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    print(f"worker: both runs final {time.monotonic() - started:.1f} s after it started")

    ends = sorted((state.type, state.message) for state in states if state)
    assert ends == [
        (StateType.CANCELLED, "Deployment concurrency limit reached."),
        (StateType.COMPLETED, None),
    ], ends
    [completed] = [state for state in states if state and state.is_completed()]
    assert counts_artifact(completed)["api_keys_revoked"] == 1
    session.expire_all()
    assert session.query(APIKey).filter(APIKey.revoked_at.is_(None)).count() == 0  # in the intended database
