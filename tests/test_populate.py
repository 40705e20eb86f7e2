"""`python -m tests.populate`: a target count of valid fake users (and keys), on both databases."""

import io
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Role
from app.domains.base.models import utcnow
from app.domains.base.permissions import permissions
from app.domains.users.api_keys import api_key_prefix
from app.domains.users.exceptions import InvalidAPIKeyError
from app.domains.users.models import APIKey, User
from app.domains.users.schemas import UserCreate
from app.domains.users.service import APIKeyService
from app.infrastructure.config import PROJECT_ROOT, get_settings
from app.infrastructure.database import Database
from tests import populate
from tests.helpers import CHEAP_ARGON2, alembic_config, settings_for
from tests.test_taskfile import _task


def _counts(session: Session) -> tuple[int, int]:
    return session.query(User).count(), session.query(APIKey).count()


def test_count_is_a_target_and_reruns_create_nothing(container: Container, database: Database) -> None:
    first = populate.populate(container, 50, batch_size=20)
    assert (first.existing, first.users, first.keys) == (0, 50, 5)
    again = populate.populate(container, 50, batch_size=20)
    assert (again.existing, again.users, again.keys) == (50, 0, 0)
    more = populate.populate(container, 80, batch_size=20)
    assert (more.existing, more.users, more.keys) == (50, 30, 3)
    fewer = populate.populate(container, 10)
    assert (fewer.users, fewer.keys) == (0, 0)
    with database.session() as session:
        assert _counts(session) == (80, 8)


def test_the_rows_pass_the_domains_validation(container: Container, database: Database) -> None:
    populate.populate(container, 60, batch_size=25)
    with database.session() as session:
        users = list(session.scalars(select(User)))
        keys = list(session.scalars(select(APIKey)))
    assert len({user.email for user in users}) == 60
    for user in users:
        assert user.email == user.email.lower()
        assert user.first_name
        assert user.last_name
        assert user.role in {Role.ADMIN, Role.MEMBER}
        UserCreate.model_validate({name: getattr(user, name) for name in ("email", "first_name", "last_name", "role")})
    assert any(not user.is_active for user in users)
    owners = {user.id for user in users}
    now = utcnow()
    for key in keys:
        assert key.user_id in owners
        assert api_key_prefix(f"{key.prefix}_{'A' * 43}") == key.prefix
        assert key.scopes
        assert not permissions.unknown(key.scopes)
        assert key.expires_at is None or key.expires_at > now
        assert key.key_hash.startswith("$argon2id$")
    assert len({key.key_hash for key in keys}) == 1  # one throwaway secret per run


def test_fake_keys_cannot_authenticate(container: Container, database: Database) -> None:
    populate.populate(container, 10)
    with database.session() as session:
        key = session.scalars(select(APIKey)).one()
    with container.unit_of_work() as uow, pytest.raises(InvalidAPIKeyError):
        uow.service(APIKeyService).authenticate(f"{key.prefix}_{'A' * 43}")


def test_progress_bar_draws_one_line_and_ends_it() -> None:
    stream = io.StringIO()
    bar = populate.ProgressBar(stream, enabled=True)
    bar.update(50, 100)
    bar.update(100, 100)
    bar.close()
    assert stream.getvalue().startswith("\r[###############...............]  50 % 50/100 users, ")
    assert stream.getvalue().endswith("\n")
    silent = io.StringIO()
    populate.ProgressBar(silent, enabled=False).update(1, 2)
    assert silent.getvalue() == ""


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'unmigrated.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("count", ["-1", "abc", "1.5", ""])
def test_a_bad_count_exits_2_with_a_clear_message(count: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        populate.main(["--count", count])
    assert exit_.value.code == 2
    assert f"argument --count: must be a whole number of at least 0, not {count!r}" in capsys.readouterr().err


@pytest.mark.usefixtures("environment")
def test_an_unmigrated_database_is_reported_not_a_traceback(capsys: pytest.CaptureFixture) -> None:
    assert populate.main(["--count", "5"]) == 1
    assert "is it migrated (`task migrate`)?" in capsys.readouterr().err


@pytest.mark.usefixtures("environment")
def test_refuses_outside_development(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://app:strong-secret@127.0.0.1:1/app")
    assert populate.main(["--count", "5"]) == 1
    assert "populate fills development databases only (ENVIRONMENT=staging)" in capsys.readouterr().err


def test_the_command_end_to_end_on_a_sqlite_file(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'populate.db'}"
    database = Database(settings_for(url))
    with database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PYTHONPATH": str(PROJECT_ROOT),
        **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command_line = [sys.executable, "-m", "tests.populate", *args]
        return subprocess.run(command_line, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)

    created = run("--count", "30", "--batch-size", "7")
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(
        r"Created 30 users and 3 API keys in [\d.]+ s \(\d+ users/s\); 30 users exist\.\n"
        r"The fake API keys cannot be used .*; for a usable key: task generate-user -- --email you@example.com\n",
        created.stdout,
    )
    assert created.stderr == ""  # no progress bar off a terminal
    rerun = run("--count", "30")
    assert (rerun.returncode, rerun.stdout) == (0, "Nothing to do: 30 users exist (target 30).\n")
    with database.session() as session:
        assert _counts(session) == (30, 3)
    database.dispose()


# -- development databases only, refused before anything is touched --------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("sqlite:///var/app.db", True),
        ("sqlite://", True),
        ("postgresql+psycopg2://app:pw@127.0.0.1:5432/app_dev", True),
        ("postgresql+psycopg2://app:pw@db.internal/shop_test", True),  # the name decides, not the host
        ("postgresql+psycopg2://app:pw@127.0.0.1:5432/app", False),  # a tunnel to production looks like this
        ("postgresql+psycopg2://app:pw@127.0.0.1:5432/app_dev_copy", False),
        ("postgresql+psycopg2://app:pw@127.0.0.1:5432/_dev", False),
        ("postgresql+psycopg2://app:pw@127.0.0.1:5432/", False),  # libpq would pick a name of its own
        ("postgresql+psycopg2://app:pw@127.0.0.1/app_dev?dbname=app", False),  # the query wins over the path
        ("postgresql+psycopg2://app:pw@127.0.0.1/app_dev?service=prod", False),
        ("mysql://app:pw@127.0.0.1/app_dev", False),
    ],
)
def test_which_databases_are_development_ones(url: str, allowed: bool) -> None:
    refusal = populate.development_database_refusal(settings_for(url))
    assert (refusal is None) == allowed, refusal
    if not allowed:
        assert refusal.startswith("populate fills development databases only")


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_a_development_name_is_refused_outside_development(environment: str) -> None:
    settings = settings_for("postgresql+psycopg2://app:pw@127.0.0.1/app_dev").model_copy(
        update={"environment": environment}
    )
    assert populate.development_database_refusal(settings) == (
        f"populate fills development databases only (ENVIRONMENT={environment})"
    )


@contextmanager
def listening_port() -> Iterator[tuple[int, Callable[[], bool]]]:
    """A port that accepts TCP connections and never answers: `connected()` tells whether anything
    connected to it (a PostgreSQL client would, before its first byte)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)

        def connected() -> bool:
            try:
                server.accept()[0].close()
            except BlockingIOError:
                return False
            return True

        yield server.getsockname()[1], connected


@pytest.mark.usefixtures("environment")
def test_a_production_looking_database_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """ENVIRONMENT unset is development (its default): the database's name is what stops it."""
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    with listening_port() as (port, connected):
        monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg2://app:strong-secret@127.0.0.1:{port}/app")
        get_settings.cache_clear()
        assert populate.main(["--count", "5"]) == 1
        assert not connected()
    assert "the PostgreSQL database 'app' is not named *_dev or *_test" in capsys.readouterr().err


@pytest.mark.usefixtures("environment")
def test_check_touches_nothing(tmp_path: Path) -> None:
    assert populate.main(["--check", "--count", "5"]) == 0
    assert not (tmp_path / "unmigrated.db").exists()  # not even created


def _task_environment(database_url: str) -> dict[str, str]:
    cheap = {name.upper(): str(value) for name, value in CHEAP_ARGON2.items()}
    return {"DATABASE_URL": database_url, "ENVIRONMENT": "development", **cheap}


@pytest.mark.parametrize(
    ("environment", "name", "message"),
    [
        ("development", "app", "the PostgreSQL database 'app' is not named *_dev or *_test"),
        ("staging", "app_dev", "populate fills development databases only (ENVIRONMENT=staging)"),
    ],
)
def test_the_task_refuses_before_migrating(environment: str, name: str, message: str) -> None:
    """`task populate` used to migrate first (`deps: [migrate]`): now nothing connects at all."""
    with listening_port() as (port, connected):
        env = {"DATABASE_URL": f"postgresql+psycopg2://app:strong-secret@127.0.0.1:{port}/{name}"}
        result = _task("-x", "populate", "--", "--count", "5", env={**env, "ENVIRONMENT": environment})
        assert not connected()  # alembic never ran
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "alembic upgrade" not in result.stderr


def test_the_task_migrates_then_fills_a_development_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    result = _task("-x", "populate", "--", "--count", "5", "--quiet", env=_task_environment(url))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Created 5 users and 1 API keys")
    database = Database(settings_for(url))
    with database.session() as session:
        assert _counts(session) == (5, 1)
    database.dispose()
