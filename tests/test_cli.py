"""`generate-user` and `generate-key` against a real database: in-process (for speed) and once each
as a console script."""

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import select

from app.bootstrap import Container
from app.cli import generate_key, generate_user
from app.domains.base.actors import Role
from app.domains.base.models import utcnow
from app.domains.base.permissions import permissions
from app.domains.users.api_keys import api_key_prefix
from app.domains.users.models import APIKey, User
from app.domains.users.service import APIKeyService
from app.infrastructure.config import Settings, get_settings
from app.infrastructure.database import Database
from tests.helpers import CHEAP_ARGON2

Run = Callable[..., tuple[int, str, str]]


def _environment(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()}}


def _runner(command: Callable[[list[str]], int], capsys: pytest.CaptureFixture) -> Run:
    def run(*args: str) -> tuple[int, str, str]:
        get_settings.cache_clear()
        try:
            code = command(list(args))
        except SystemExit as exit_:  # argparse
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def cli_environment(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name, value in _environment(settings.database_url).items():
        monkeypatch.setenv(name, value)
    yield
    get_settings.cache_clear()


@pytest.fixture
def run_cli(cli_environment: None, capsys: pytest.CaptureFixture) -> Run:
    return _runner(generate_user, capsys)


@pytest.fixture
def run_generate_key(cli_environment: None, capsys: pytest.CaptureFixture) -> Run:
    return _runner(generate_key, capsys)


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


def _stored_key(database: Database, api_key: str) -> APIKey:
    with database.session() as session:
        return session.scalars(select(APIKey).where(APIKey.prefix == api_key_prefix(api_key))).one()


def test_generate_key_mints_a_working_key_for_an_existing_user_with_every_permission(
    run_generate_key: Run, make_user: Callable, container: Container, database: Database
) -> None:
    user = make_user(email="ada@example.com", role=Role.MEMBER)
    code, out, err = run_generate_key("--email", "ADA@example.com ", "--json")  # found as stored: lower-cased
    assert code == 0, err
    created = json.loads(out.strip().splitlines()[-1])
    assert created["user_id"] == str(user.id)
    key = _stored_key(database, created["api_key"])
    assert sorted(key.scopes) == sorted(permissions.all())  # every permission registered now
    assert (key.name, key.expires_at, key.user_id) == ("generated by generate-key", None, user.id)
    with container.unit_of_work() as uow:
        assert uow.service(APIKeyService).authenticate(created["api_key"]).user_id == user.id


def test_generate_key_takes_scopes_a_name_and_a_lifetime(
    run_generate_key: Run, make_user: Callable, database: Database
) -> None:
    make_user(email="ci@example.com", role=Role.ADMIN)
    started = utcnow()
    code, out, err = run_generate_key(
        "--email", "ci@example.com", "--scopes", "users:read,api_keys:read", "users:write", "--name", "ci",
        "--expires-in", "90d",
    )  # fmt: skip
    assert code == 0, err
    assert out.count("sk_") == 1  # printed once
    assert "scopes: api_keys:read, users:read, users:write" in out
    key = _stored_key(database, out.strip().rsplit(" ", 1)[-1])
    assert (key.name, sorted(key.scopes)) == ("ci", ["api_keys:read", "users:read", "users:write"])
    assert timedelta(days=90) <= key.expires_at - started <= timedelta(days=90, minutes=1)


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--email", "nobody@example.com"], 1, "error: no user has this e-mail"),
        (["--email", "off@example.com"], 1, "error: this user is deactivated: its keys would be refused"),
        (["--email", "on@example.com", "--scopes", "nothing:read"], 2, "unknown permissions: nothing:read"),
        (["--email", "on@example.com", "--expires-in", "90"], 2, "'90' is not a duration such as 90d"),
        (["--email", "on@example.com", "--expires-in", "0d"], 2, "'0d' is not a duration"),
        ([], 2, "the following arguments are required: --email"),
    ],
)
def test_generate_key_refuses_clearly_and_adds_nothing(
    run_generate_key: Run, make_user: Callable, database: Database, args: list[str], status: int, message: str
) -> None:
    make_user(email="on@example.com")
    make_user(email="off@example.com", is_active=False)
    code, _, err = run_generate_key(*args)
    assert code == status
    assert message in err
    with database.session() as session:
        assert session.query(APIKey).count() == 0


def test_generate_key_console_script(settings: Settings, database: Database, make_user: Callable, tmp_path) -> None:
    user = make_user(email="script-key@example.com")
    result = subprocess.run(
        ["generate-key", "--email", "script-key@example.com", "--json"],
        env={**os.environ, **_environment(settings.database_url)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["user_id"] == str(user.id)


def test_an_organization_bound_key_from_the_command_line_reaches_that_organization_only(
    run_cli: Run, run_generate_key: Run, client, make_organization: Callable, make_project: Callable
) -> None:
    """`--organization`: the user becomes a member (created locally like a session's first sight of
    it) and the key is bound to it; `generate-key --organization` binds a key for a member only."""
    other = make_organization()
    make_project(other)
    code, out, err = run_cli(
        "--email", "owner@example.com", "--organization", "org_cli", "--organization-role", "admin", "--json"
    )
    assert code == 0, err
    headers = {"X-API-Key": json.loads(out.splitlines()[-1])["api_key"]}
    created = client.post("/api/projects", json={"name": "From the CLI"}, headers=headers)
    assert created.status_code == 201, created.text
    listed = client.get("/api/projects", headers=headers).json()
    assert [item["id"] for item in listed["items"]] == [created.json()["id"]]  # not the other organization's
    organizations = client.get("/api/organizations", headers=headers).json()["items"]
    assert [organization["clerk_id"] for organization in organizations] == ["org_cli"]

    code, out, err = run_generate_key("--email", "owner@example.com", "--organization", "org_cli", "--json")
    assert code == 0, err
    second = {"X-API-Key": json.loads(out.splitlines()[-1])["api_key"]}
    assert client.get("/api/projects", headers=second).json()["total"] == 1
    code, _, err = run_generate_key("--email", "owner@example.com", "--organization", other.clerk_id)
    # (the app's access log also writes to stderr in this process: the command's line is the last)
    assert (code, err.strip().splitlines()[-1]) == (1, "error: the user is not a member of this organization")
