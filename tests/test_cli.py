"""`generate-user` against a real database: in-process (for speed) and once as a console script."""

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from uuid import UUID

import pytest

from app.bootstrap import Container
from app.cli import generate_user
from app.domains.base.actors import Role
from app.domains.users.models import User
from app.domains.users.service import APIKeyService
from app.infrastructure.config import Settings, get_settings
from app.infrastructure.database import Database
from tests.helpers import CHEAP_ARGON2

Run = Callable[..., tuple[int, str, str]]


def _environment(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()}}


@pytest.fixture
def run_cli(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path
) -> Iterator[Run]:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name, value in _environment(settings.database_url).items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> tuple[int, str, str]:
        get_settings.cache_clear()
        try:
            code = generate_user(list(args))
        except SystemExit as exit_:  # argparse
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    get_settings.cache_clear()


def test_creates_a_user_and_a_working_key(run_cli: Run, database: Database, container: Container) -> None:
    code, out, err = run_cli("--email", "Root@Example.com", "--role", "admin", "--first-name", "Ro", "--json")
    assert code == 0, err
    created = json.loads(out.strip().splitlines()[-1])
    with database.session() as session:
        user = session.get(User, UUID(created["user_id"]))
        assert (user.email, user.role, user.first_name) == ("root@example.com", Role.ADMIN, "Ro")
    with container.unit_of_work() as uow:
        actor = uow.service(APIKeyService).authenticate(created["api_key"])
    assert (actor.user_id, actor.role) == (user.id, Role.ADMIN)


def test_plain_output_shows_the_key_once(run_cli: Run) -> None:
    code, out, _ = run_cli("--email", "plain@example.com")
    assert code == 0
    assert "member plain@example.com" in out
    assert out.count("sk_") == 1


def test_duplicate_email_fails_cleanly_and_adds_nothing(run_cli: Run, make_user: Callable, database: Database) -> None:
    make_user(email="taken@example.com")
    code, _, err = run_cli("--email", "TAKEN@example.com")
    assert (code, err.strip()) == (1, "error: a user with this e-mail already exists")
    with database.session() as session:
        assert session.query(User).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "not-an-email"], "error: email: value is not a valid email address"),
        (["--email", "a@example.com", "--role", "owner"], "invalid choice: 'owner'"),
        ([], "the following arguments are required: --email"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(run_cli: Run, args: list[str], message: str) -> None:
    code, _, err = run_cli(*args)
    assert code == 2
    assert message in err


def test_unmigrated_database_is_reported_not_a_traceback(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _, err = run_cli("--email", "a@example.com")
    assert code == 1
    assert "is it migrated (`task migrate`)?" in err


def test_console_script_is_installed_and_prints_json_last(settings: Settings, database: Database, tmp_path) -> None:
    result = subprocess.run(
        ["generate-user", "--email", "script@example.com", "--json"],
        env={**os.environ, **_environment(settings.database_url)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout.strip().splitlines()[-1])) == {"user_id", "api_key"}
