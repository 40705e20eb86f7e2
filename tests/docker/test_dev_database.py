"""`task db-up` for real (`task test-docker`): the compose PostgreSQL alone, published on loopback at
APP_DB_PORT, and a DATABASE_URL printed that the app migrates and serves from. Under a throwaway
project name, env file and free port; `down -v` always runs."""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.infrastructure.config import PROJECT_ROOT
from app.infrastructure.database import Database
from tests.docker.test_stack import compose_command, engine, free_port  # noqa: F401 (engine: a fixture)
from tests.helpers import settings_for

pytestmark = pytest.mark.docker

TASK = str(Path(sys.executable).parent / "task")


@pytest.fixture
def dev_environment(engine: None, tmp_path: Path) -> Iterator[dict[str, str]]:  # noqa: F811 (the fixture)
    env_file = tmp_path / "docker.env"
    env_file.write_text(f"APP_DB_PASSWORD={secrets.token_hex(12)}\nPREFECT_DB_PASSWORD={secrets.token_hex(12)}\n")
    environment = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": f"appdbup{secrets.token_hex(4)}",
        "DOCKER_ENV_FILE": str(env_file),
        "APP_DB_PORT": str(free_port()),
        "NO_COLOR": "1",
    }
    yield environment
    files = ["-f", "docker-compose.yml", "-f", "docker-compose.dev.yml", "--env-file", str(env_file)]
    subprocess.run(
        [*compose_command(), *files, "down", "-v"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_db_up_serves_the_app_database_on_loopback(dev_environment: dict[str, str]) -> None:
    started = subprocess.run(
        [TASK, "-x", "db-up"],
        cwd=PROJECT_ROOT,
        env=dev_environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1].removeprefix("DATABASE_URL=")
    assert url.startswith("postgresql+psycopg2://app:")
    assert url.endswith(f"@127.0.0.1:{dev_environment['APP_DB_PORT']}/app")
    migrated = subprocess.run(
        [TASK, "-x", "migrate"],
        cwd=PROJECT_ROOT,
        env={**dev_environment, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    database = Database(settings_for(url))
    try:
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 0
    finally:
        database.dispose()
    project = dev_environment["COMPOSE_PROJECT_NAME"]
    running = subprocess.run(
        ["docker", "ps", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Ports}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert len(running) == 1, running  # dbapp alone
    assert running[0] == f"127.0.0.1:{dev_environment['APP_DB_PORT']}->5432/tcp", running  # loopback only
