"""Clients generated from the OpenAPI document, used as their authors would, against a live server.

The document is the one the live uvicorn serves. TypeScript: openapi-typescript (default options)
and openapi-fetch, pinned by tests/clients/typescript/package-lock.json; `tsc` (strict) must be clean
before the session runs. Python: openapi-python-client, pinned by tests/clients/python/uv.lock (its
own environment: see its pyproject.toml); mypy --strict must pass on the session. Each session makes
the same calls (me, a list with every parameter, create/patch/delete, a create retried with its
Idempotency-Key and reused with another body, API keys, typed 400/401/403/404/409/422 and a 429),
reads every answer through the generated types and fails on any surprise.

One database is enough for a client smoke test: SQLite (the suite covers PostgreSQL). Not part of
`task test` (it needs npm and Node): `task clients` runs it, and CI does.
"""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command

from app.cli import generate_user
from app.infrastructure.config import get_settings
from app.infrastructure.database import Database
from tests.helpers import CHEAP_ARGON2, alembic_config, settings_for
from tests.test_concurrency import serving

pytestmark = pytest.mark.clients

HERE = Path(__file__).parent
TYPESCRIPT = HERE / "typescript"
PYTHON = HERE / "python"
# The server's AUTH_FAILURES_PER_KEY: wrong secrets on one key's prefix a minute before 429s. The
# per-client limit is high, so the sessions' failures (all from 127.0.0.1) do not add up.
FAILURES_BEFORE_429 = 3
ADMIN_EMAIL = "admin@example.com"
# The package alone (no pyproject around it), named by its directory: `app_client`.
GENERATE_PYTHON = ["openapi-python-client", "generate", "--meta", "none"]


def run(
    step: str, args: list[str], cwd: Path, env: dict[str, str] | None = None, *, warnings: str | None = None
) -> str:
    """Run one step; its output on success (printed, timed), a failure with all of it otherwise, or
    when its output matches `warnings` (generators warn, skip what they cannot read and exit 0)."""
    started = time.perf_counter()
    result = subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300, check=False
    )
    print(f"\n[{step}: {time.perf_counter() - started:.1f} s]\n{result.stdout}", end="")
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        pytest.fail(f"{step} failed ({result.returncode}):\n{output}", pytrace=False)
    if warnings is not None and re.search(warnings, output):
        pytest.fail(f"{step} warned:\n{output}", pytrace=False)
    return result.stdout


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('clients') / 'clients.db'}"
    database = Database(settings_for(url))
    with database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    database.dispose()
    return url


@pytest.fixture(scope="module")
def cli(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """`generate-user ... --json`, in-process (for speed) on the test database: its user id and key."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cli"))  # no developer .env
        patch.setenv("DATABASE_URL", database_url)
        for name, value in CHEAP_ARGON2.items():
            patch.setenv(name.upper(), str(value))

        def generate(*args: str) -> str:
            get_settings.cache_clear()
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert generate_user([*args, "--json"]) == 0
            return json.loads(out.getvalue().splitlines()[-1])["api_key"]

        yield generate
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def admin_key(cli) -> str:
    return cli("--email", ADMIN_EMAIL, "--role", "admin")


def session_environment(cli, admin_key: str, live: str, tag: str) -> dict[str, str]:
    """The accounts of one session: its own organization, an admin of it and a member."""
    organization = f"org_clients_{tag}"
    owner_email = f"owner-{tag}@example.com"
    owner = cli("--email", owner_email, "--organization", organization, "--organization-role", "admin")
    member = cli("--email", f"member-{tag}@example.com", "--organization", organization)
    return {
        "BASE_URL": live,
        "TAG": tag,
        "OWNER_EMAIL": owner_email,
        "OWNER_KEY": owner,
        "MEMBER_KEY": member,
        "ADMIN_KEY": admin_key,
        "FAILURES_BEFORE_429": str(FAILURES_BEFORE_429),
    }


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    limits = {"AUTH_FAILURES_PER_KEY": str(FAILURES_BEFORE_429), "AUTH_FAILURES_PER_CLIENT": "1000"}
    with serving(settings_for(database_url), tmp_path_factory.mktemp("server"), **limits) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def spec(live: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenAPI document the live server serves."""
    path = tmp_path_factory.mktemp("spec") / "openapi.json"
    response = httpx.get(f"{live}/schema/openapi.json", timeout=30)
    response.raise_for_status()
    path.write_bytes(response.content)
    return path


def test_typescript_client(spec: Path, live: str, cli, admin_key: str) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is needed (Node 20+)"
    run("npm ci", [npm, "ci", "--no-audit", "--no-fund"], TYPESCRIPT)
    run("openapi-typescript", [npm, "run", "--silent", "generate", "--", str(spec)], TYPESCRIPT, warnings=r"(?i)⚠|warn")
    run("tsc --strict", [npm, "run", "--silent", "build"], TYPESCRIPT)
    environment = session_environment(cli, admin_key, live, "ts")
    out = run("typescript session", [npm, "run", "--silent", "session"], TYPESCRIPT, environment)
    assert "calls as expected" in out


def test_python_client(spec: Path, live: str, cli, admin_key: str, tmp_path: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in UV
    assert uv, "uv is needed"
    # The client's own locked environment, not the app's (VIRTUAL_ENV would name the app's).
    project = {"VIRTUAL_ENV": "", "UV_PROJECT_ENVIRONMENT": ""}
    in_project = [uv, "run", "--project", str(PYTHON), "--locked", "--no-progress"]
    run(
        "openapi-python-client",
        [*in_project, *GENERATE_PYTHON, "--path", str(spec), "--output-path", str(tmp_path / "app_client")],
        PYTHON,
        project,
        warnings=r"Warning",  # e.g. a response it could not read, left out of the client
    )
    generated = {**project, "MYPYPATH": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    mypy = ["mypy", "--config-file", "pyproject.toml", "--cache-dir", str(tmp_path / ".mypy_cache")]
    run("mypy --strict", [*in_project, *mypy, "-m", "session", "-m", "contract"], PYTHON, generated)
    environment = {**generated, **session_environment(cli, admin_key, live, "py")}
    out = run("python session", [*in_project, "python", "session.py"], PYTHON, environment)
    assert "calls as expected" in out
