"""docker-compose.yml (and its development override), Dockerfile and docker.env.example agree,
without a Docker engine.

The compose file is valid Compose Specification; every build target exists; every app service gets
settings the app accepts in production once docker.env.example's blanks are filled in; secrets come
only from the env file. The real stack runs in tests/docker/test_stack.py (`task test-docker`).
"""

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from app.infrastructure.config import PROJECT_ROOT, Settings

SCHEMA = Path(__file__).parent / "data" / "compose-spec" / "compose-spec.json"
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
DEV_OVERRIDE = yaml.safe_load((PROJECT_ROOT / "docker-compose.dev.yml").read_text())
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.dev.yml"]
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
ENV_EXAMPLE = PROJECT_ROOT / "docker.env.example"
APP_SERVICES = ["migrations", "api", "worker"]
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
# ${NAME}, ${NAME:?message}, ${NAME:-default}, ${NAME-default}, ${NAME?message}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def interpolate(value: str, variables: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if variables.get(name):
            return variables[name]
        if op in (":-", "-"):
            return arg
        raise KeyError(f"{name} is required ({arg})")

    return VARIABLE.sub(substitute, value)


def filled_in_env() -> dict[str, str]:
    """docker.env.example with its blanks filled as a user would (non-placeholder passwords)."""
    return {name: value or f"pw-{name.lower()}-7f3a9c" for name, value in env_file(ENV_EXAMPLE).items()}


def all_variables() -> list[re.Match[str]]:
    """Every ${...} of every compose file (the override's are interpolated from the same env file)."""
    return [match for name in COMPOSE_FILES for match in VARIABLE.finditer((PROJECT_ROOT / name).read_text())]


@pytest.mark.parametrize("document", [COMPOSE, DEV_OVERRIDE], ids=COMPOSE_FILES)
def test_compose_file_follows_the_compose_specification(document: dict) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(document)]
    assert errors == []


def test_the_development_override_only_publishes_the_app_database_on_loopback() -> None:
    """`task db-up`: the app's PostgreSQL on 127.0.0.1:${APP_DB_PORT:-5433}, nothing else changed."""
    assert DEV_OVERRIDE == {"services": {"dbapp": {"ports": ["127.0.0.1:${APP_DB_PORT:-5433}:5432"]}}}
    assert "ports" not in COMPOSE["services"]["dbapp"]  # the stack itself publishes no database
    assert interpolate(DEV_OVERRIDE["services"]["dbapp"]["ports"][0], filled_in_env()) == "127.0.0.1:5433:5432"
    assert interpolate(DEV_OVERRIDE["services"]["dbapp"]["ports"][0], {"APP_DB_PORT": "6000"}) == "127.0.0.1:6000:5432"
    assert "# APP_DB_PORT=5433" in ENV_EXAMPLE.read_text().splitlines()  # documented beside the other ports


def test_every_build_target_is_a_stage_of_the_dockerfile() -> None:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE, flags=re.IGNORECASE | re.MULTILINE))
    targets = {name: service["build"]["target"] for name, service in COMPOSE["services"].items() if "build" in service}
    assert set(targets) == set(APP_SERVICES)
    assert {name: target in stages for name, target in targets.items()} == dict.fromkeys(targets, True)
    assert targets == {"migrations": "migrations", "api": "api", "worker": "worker"}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_app_service_gets_valid_production_settings(service: str) -> None:
    """What compose hands the container (env file, then `environment:`) builds production Settings."""
    definition = COMPOSE["services"][service]
    variables = filled_in_env()
    assert interpolate(definition["env_file"], variables) == "docker.env"
    environment = {**variables, **{k: interpolate(str(v), variables) for k, v in definition["environment"].items()}}
    assert environment["ENVIRONMENT"] == "production"
    fields = {name.lower(): value for name, value in environment.items() if name.lower() in Settings.model_fields}
    settings = Settings(_env_file=None, **fields)  # the guard rails: PostgreSQL, no placeholder password
    assert settings.database_url.startswith("postgresql+psycopg2://app:pw-app_db_password-7f3a9c@dbapp:5432/")
    assert "dbapp" in definition_dependencies(service)


def definition_dependencies(service: str) -> set[str]:
    """The services this one waits for, transitively."""
    seen: set[str] = set()
    pending = [service]
    while pending:
        for name in COMPOSE["services"][pending.pop()].get("depends_on", {}):
            if name not in seen:
                seen.add(name)
                pending.append(name)
    return seen


def test_the_worker_serves_against_the_compose_prefect_server() -> None:
    worker = COMPOSE["services"]["worker"]
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect:4200/api"
    assert worker["depends_on"]["prefect"] == {"condition": "service_healthy"}
    assert "command" not in worker  # the image's CMD: python -m app.workers.main serve
    assert 'CMD ["python", "-m", "app.workers.main", "serve"]' in DOCKERFILE.split("AS worker", 1)[1]
    database_url = COMPOSE["services"]["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert database_url.startswith("postgresql+asyncpg://prefect:")
    assert "@dbprefect:5432/" in database_url


def test_start_order_is_databases_then_migrations_then_api_and_worker() -> None:
    services = COMPOSE["services"]
    assert services["migrations"]["depends_on"] == {"dbapp": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrations"] == {"condition": "service_completed_successfully"}
    assert services["prefect"]["depends_on"] == {"dbprefect": {"condition": "service_healthy"}}
    for name in ("dbapp", "dbprefect", "prefect"):
        assert "healthcheck" in services[name], name
    assert "HEALTHCHECK" in DOCKERFILE.split("AS api", 1)[1].split("\nFROM ", 1)[0]


def test_the_prefect_server_matches_the_locked_prefect() -> None:
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    locked = next(package["version"] for package in lock["package"] if package["name"] == "prefect")
    image = COMPOSE["services"]["prefect"]["image"]
    assert image.startswith(f"prefecthq/prefect:{locked}-python3.13"), (image, locked)


def test_secrets_come_only_from_the_env_file_without_defaults() -> None:
    example = env_file(ENV_EXAMPLE)
    for match in all_variables():
        name = match["name"]
        if SECRET.search(name):
            assert match["op"] == ":?", f"${{{name}}} must fail when unset (`:?`), never fall back to a default"
            assert example.get(name) == "", f"{name}: listed in docker.env.example, left blank"
    for service in COMPOSE["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if SECRET.search(name):
                assert VARIABLE.fullmatch(str(value)), f"{name} is written into docker-compose.yml"
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert "docker.env" in ignored


def test_every_required_variable_is_in_the_env_file_example() -> None:
    example = env_file(ENV_EXAMPLE)
    required = {match["name"] for match in all_variables() if match["op"] in (":?", "?", None)}
    assert required <= set(example), required - set(example)
    interpolate("".join(match[0] for match in all_variables()), filled_in_env())  # nothing left unset


def test_the_build_context_carries_only_what_the_dockerfile_copies() -> None:
    rules = [line for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert rules[0] == "*", "an allow-list: everything is ignored, then the needed paths are let back in"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(source.split("/")[0] for source in line.split()[1:-1])
    assert copied == allowed
    assert not {".env", "docker.env", ".venv", ".git", "var", "tests"} & allowed
