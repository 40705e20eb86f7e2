"""The `task` commands README documents: listed with descriptions, and the traps go-task sets avoided."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.infrastructure.config import PROJECT_ROOT

TASK = shutil.which("task", path=str(Path(sys.executable).parent)) or "task"
DOCUMENTED = [
    *("install", "dev", "worker", "flow", "test", "test-cov", "lint", "format", "typecheck", "migrate"),
    *("migrate-create", "populate", "generate-user", "generate-key", "bench", "bench-jobs", "clients"),
    *("docker-build-all", "docker-up", "docker-logs", "docker-down", "db-up"),
]


def _task(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASK, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def test_every_documented_task_is_listed_with_a_description() -> None:
    listed = json.loads(_task("--list", "--json").stdout)["tasks"]
    described = {task["name"] for task in listed if task["desc"].strip()}
    assert set(DOCUMENTED) <= described, sorted(set(DOCUMENTED) - described)


def test_readme_names_every_task() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [name for name in DOCUMENTED if f"`{name}" not in readme] == []


def test_migrate_create_without_a_name_refuses_and_writes_nothing() -> None:
    before = set((PROJECT_ROOT / "migrations" / "versions").iterdir())
    result = _task("-x", "migrate-create")
    assert result.returncode != 0
    assert "Name the migration" in result.stderr
    assert set((PROJECT_ROOT / "migrations" / "versions").iterdir()) == before


@pytest.mark.parametrize(
    ("cli_args", "expected"), [(["add widgets"], "'add widgets'"), (["add", "widgets"], "'add widgets'")]
)
def test_migrate_create_passes_the_name_once_quoted(cli_args: list[str], expected: str) -> None:
    result = _task("--dry", "migrate-create", "--", *cli_args)
    assert f"alembic revision --autogenerate -m {expected}\n" in result.stderr


def test_dev_serves_on_port_and_host_from_the_environment() -> None:
    result = _task("--dry", "dev", env={"PORT": "9123", "HOST": "10.1.2.3"})
    assert "--host 10.1.2.3 --port 9123" in result.stderr


def test_exit_code_flag_passes_the_commands_status_on(tmp_path: Path) -> None:
    """go-task's own status for any failure is 201; scripts call `task -x` to get the command's."""
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}  # generate-user migrates first
    result = _task("-x", "generate-user", "--", "--email", "a@example.com", "--role", "emperor", env=database)
    assert result.returncode == 2, result.stderr  # argparse's status for a bad choice


def test_migrate_create_migrates_first_after_checking_its_name() -> None:
    result = _task("--dry", "migrate-create", "--", "add widgets")
    assert result.stderr.index("alembic upgrade head") < result.stderr.index("alembic revision --autogenerate")
    refused = _task("--dry", "migrate-create")
    assert "alembic upgrade head" not in refused.stderr  # no name, nothing done


def test_migrate_create_works_on_a_fresh_database(tmp_path: Path) -> None:
    """A new clone has no database yet: autogenerate alone refuses it ("Target database is not up to
    date"). Run in a copy of the project's Taskfile, Alembic setup and migrations."""
    shutil.copy(PROJECT_ROOT / "Taskfile.yml", tmp_path)
    shutil.copy(PROJECT_ROOT / "alembic.ini", tmp_path)
    shutil.copytree(PROJECT_ROOT / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    versions = tmp_path / "migrations" / "versions"
    before = set(versions.iterdir())
    result = subprocess.run(
        [TASK, "-x", "--dir", str(tmp_path), "migrate-create", "--", "nothing new"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"},
    )
    assert result.returncode == 0, result.stderr
    created = set(versions.iterdir()) - before
    assert len(created) == 1, created
    assert '"""nothing new' in created.pop().read_text()


def test_generate_key_migrates_first_and_passes_its_arguments_on(tmp_path: Path) -> None:
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}  # fresh: migrated by the task
    result = _task("-x", "generate-key", "--", "--email", "nobody@example.com", "--expires-in", "1d", env=database)
    assert result.returncode == 1, result.stderr
    assert "error: no user has this e-mail" in result.stderr


def test_db_up_starts_only_the_app_database_with_the_development_override(tmp_path: Path) -> None:
    """Run for real by tests/docker/test_dev_database.py (`task test-docker`)."""
    missing = _task("-x", "db-up", env={"DOCKER_ENV_FILE": str(tmp_path / "none.env")})
    assert missing.returncode != 0
    assert "copy docker.env.example to docker.env" in missing.stderr
    env_file = tmp_path / "docker.env"
    env_file.write_text("APP_DB_PASSWORD=pw\nPREFECT_DB_PASSWORD=pw\n")
    dry = _task("--dry", "db-up", env={"DOCKER_ENV_FILE": str(env_file)}).stderr
    assert (
        '-f docker-compose.yml -f docker-compose.dev.yml --env-file "${DOCKER_ENV_FILE:-docker.env}" up -d dbapp' in dry
    )
