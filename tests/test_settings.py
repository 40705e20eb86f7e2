"""Settings: embedded default, guard rails outside development, and .env.example in sync."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.infrastructure.config import DEFAULT_DATABASE_URL, PROJECT_ROOT, Settings

SAFE_PRODUCTION = {
    "environment": "production",
    "database_url": "postgresql+psycopg2://app:s3cure-pa55@db:5432/app",
}


def test_defaults_need_no_configuration() -> None:
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert DEFAULT_DATABASE_URL.startswith("sqlite:///")
    assert Path(DEFAULT_DATABASE_URL.removeprefix("sqlite:///")).parent == PROJECT_ROOT / "var"
    assert settings.pool_size == settings.worker_threads


def test_production_accepts_explicit_safe_settings() -> None:
    settings = Settings(_env_file=None, **SAFE_PRODUCTION)
    assert settings.environment == "production"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"database_url": None}, "DATABASE_URL must be a PostgreSQL URL"),
        ({"database_url": "sqlite:///var/app.db"}, "DATABASE_URL must be a PostgreSQL URL"),  # .env.example's
        ({"database_url": "postgresql+psycopg2://app:change-me@db/app"}, "placeholder password"),
        ({"database_url": "postgresql+psycopg2://postgres:postgres@db/app"}, "placeholder password"),
        ({"argon2_time_cost": 1}, "ARGON2_TIME_COST"),
        ({"argon2_memory_cost_kib": 1024}, "ARGON2_MEMORY_COST_KIB"),
        ({"environment": "staging", "argon2_memory_cost_kib": 1024}, "ENVIRONMENT=staging"),
        ({"forwarded_allow_ips": "*"}, "FORWARDED_ALLOW_IPS"),
        ({"forwarded_allow_ips": "172.30.80.2, *"}, "FORWARDED_ALLOW_IPS"),
        ({"forwarded_allow_ips": "0.0.0.0/0"}, "FORWARDED_ALLOW_IPS"),
        ({"forwarded_allow_ips": "10.0.0.1,::/0"}, "FORWARDED_ALLOW_IPS"),
    ],
)
def test_outside_development_unsafe_settings_refuse_to_start(overrides: dict, message: str) -> None:
    values = {**SAFE_PRODUCTION, **overrides}
    if values["database_url"] is None:
        del values["database_url"]
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)


def test_forwarded_allow_ips_names_proxies_outside_development() -> None:
    trusted = "172.30.80.2,10.1.0.0/16,::1,/run/api.sock"
    assert Settings(_env_file=None, **SAFE_PRODUCTION, forwarded_allow_ips=trusted).forwarded_allow_ips == trusted
    assert Settings(_env_file=None, forwarded_allow_ips="*").forwarded_allow_ips == "*"  # development


def test_pool_smaller_than_the_thread_pool_is_refused_everywhere() -> None:
    with pytest.raises(ValidationError, match="DATABASE_POOL_SIZE must be at least WORKER_THREADS"):
        Settings(_env_file=None, worker_threads=8, database_pool_size=4)


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_THREADS", "7")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = Settings(_env_file=None)
    assert (settings.worker_threads, settings.pool_size, settings.log_level) == (7, 7, "DEBUG")


def test_project_draft_archive_days_is_at_least_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).project_draft_archive_days == 30
    assert Settings.model_fields["project_draft_archive_days"].description
    monkeypatch.setenv("PROJECT_DRAFT_ARCHIVE_DAYS", "1")
    assert Settings(_env_file=None).project_draft_archive_days == 1
    with pytest.raises(ValidationError, match="project_draft_archive_days"):
        Settings(_env_file=None, project_draft_archive_days=0)


def test_env_example_lists_exactly_the_settings_that_exist() -> None:
    lines = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    listed = [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]
    assert len(listed) == len(set(listed)), "a setting is listed twice"
    assert set(listed) == {name.upper() for name in Settings.model_fields}


def test_env_example_values_are_valid_settings() -> None:
    settings = Settings(_env_file=PROJECT_ROOT / ".env.example")
    assert settings.environment == "development"


def test_clerk_settings_are_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLERK_ISSUER", "https://clerk.example.com")
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", "https://app.example.com/, http://localhost:3000")
    monkeypatch.setenv("CLERK_JWT_KEY", "")
    settings = Settings(_env_file=None)
    assert settings.clerk_authorized_parties == ["https://app.example.com", "http://localhost:3000"]
    assert settings.clerk_jwt_key is None
    assert settings.clerk_jwks_endpoint == "https://clerk.example.com/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clerk_issuer": "http://clerk.example.com", "clerk_authorized_parties": ["https://a.b"]}, "https://"),
        ({"clerk_issuer": "https://clerk.example.com"}, "CLERK_AUTHORIZED_PARTIES"),
    ],
)
def test_outside_development_clerk_settings_must_be_real(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **SAFE_PRODUCTION, **overrides)
    Settings(_env_file=None, **overrides)  # development tolerates them


@pytest.mark.parametrize("secret", ["change-me", "whsec_changeme", "whsec_", "whsec_not*base64", "whsec_c2hvcnQ="])
def test_a_webhook_secret_that_cannot_verify_anything_is_refused_everywhere(secret: str) -> None:
    with pytest.raises(ValidationError, match="whsec_"):
        Settings(_env_file=None, clerk_webhook_signing_secret=secret)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"ENVIRONMENT": "production"}, "DATABASE_URL must be a PostgreSQL URL"),
        ({"WORKER_THREADS": "32", "DATABASE_POOL_SIZE": "8"}, "DATABASE_POOL_SIZE must be at least WORKER_THREADS"),
        ({"WORKER_THREADS": "many"}, "invalid settings: WORKER_THREADS: Input should be a valid integer"),
    ],
)
def test_invalid_settings_stop_the_process_with_one_clear_line(
    tmp_path: Path, environment: dict, expected: str
) -> None:
    """`cp .env.example .env` plus ENVIRONMENT=production must not start: the value is judged."""
    (tmp_path / ".env").write_text((PROJECT_ROOT / ".env.example").read_text())
    code = "from app.api.main import create_app; create_app()"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **environment}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert expected in done.stderr


def test_a_sqlite_folder_that_cannot_be_made_stops_the_process_with_one_line(tmp_path: Path) -> None:
    """The `api` image run with no settings: its SQLite default sits under code it cannot write."""
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "var"  # cannot be made, whoever runs the test (root included)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DATABASE_URL": f"sqlite:///{folder}/app.db",
    }
    code = "from app.api.main import create_app; create_app()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"invalid settings: DATABASE_URL: the SQLite folder {folder} cannot be used (Not a directory); "
        "set DATABASE_URL to PostgreSQL (with ENVIRONMENT=production), or to a writable SQLite path"
    ]
