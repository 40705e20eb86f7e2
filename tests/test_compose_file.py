"""docker-compose.yml (and its development override), Dockerfile and docker.env.example agree,
without a Docker engine.

The compose file is valid Compose Specification; every build target exists; every app service gets
settings the app accepts in production once docker.env.example's blanks are filled in; secrets come
only from the env file. The real stack runs in tests/docker/test_stack.py (`task test-docker`).
"""

import ipaddress
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from app.api.request_body import API_MAX_BODY_BYTES
from app.api.routes.webhooks import CLERK_WEBHOOK_MAX_BODY_BYTES
from app.api.server import MAX_HEADER_BYTES
from app.infrastructure.config import PROJECT_ROOT, Settings, trusts_everyone

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


# -- the edge: nginx in front of the API -------------------------------------------------------

NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx" / "api.conf"


def nginx_directives(block: str = "") -> dict[str, list[str]]:
    """The config's directives (of one `location = <block>` when given): name -> the values it is given."""
    text = re.sub(r"#.*", "", NGINX_CONF.read_text())
    if block:
        text = text.split(f"location = {block} {{", 1)[1].split("}", 1)[0]
    found: dict[str, list[str]] = {}
    for statement in re.split(r"[;{}]", text):
        if words := statement.split():
            found.setdefault(words[0], []).append(" ".join(words[1:]))
    return found


def test_only_the_proxy_publishes_a_port_for_the_api() -> None:
    services = COMPOSE["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy", "prefect"}
    assert services["proxy"]["ports"] == ["${API_PORT:-8000}:80"]
    assert all(port.startswith("127.0.0.1:") for port in services["prefect"]["ports"])  # loopback only
    assert services["proxy"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services["proxy"]["volumes"] == ["./deploy/nginx/api.conf:/etc/nginx/conf.d/default.conf:ro"]


def test_the_api_believes_x_forwarded_for_from_the_proxy_alone() -> None:
    variables = filled_in_env()
    services, network = COMPOSE["services"], COMPOSE["networks"]["edge"]["ipam"]["config"][0]
    proxy_address = ipaddress.ip_address(interpolate(services["proxy"]["networks"]["edge"]["ipv4_address"], variables))
    trusted = interpolate(services["api"]["environment"]["FORWARDED_ALLOW_IPS"], variables)
    assert trusted == str(proxy_address)  # exactly that proxy: never `*`, no network
    assert not trusts_everyone(trusted)
    subnet = ipaddress.ip_network(interpolate(network["subnet"], variables))
    dynamic = ipaddress.ip_network(interpolate(network["ip_range"], variables))
    assert proxy_address in subnet
    assert proxy_address not in dynamic  # no container started before the proxy can take its address
    assert dynamic.subnet_of(subnet)  # type: ignore[arg-type]
    assert set(services["proxy"]["networks"]) == {"edge"}
    assert set(services["api"]["networks"]) == {"default", "edge"}
    for name, service in services.items():  # nothing else is on the edge network
        assert name in {"proxy", "api"} or "edge" not in service.get("networks", []), name


def test_the_proxy_overwrites_x_forwarded_for_and_passes_the_request_id_on() -> None:
    headers = dict(value.split(maxsplit=1) for value in nginx_directives()["proxy_set_header"])
    assert headers["X-Forwarded-For"] == "$remote_addr"  # overwritten, never $proxy_add_x_forwarded_for
    assert headers["X-Request-ID"] == "$request_id_out"
    assert "$proxy_add_x_forwarded_for" not in NGINX_CONF.read_text()


def kib(size: str) -> int:
    assert size.endswith("k"), size
    return int(size[:-1]) * 1024


def test_the_proxy_limits_mirror_the_app() -> None:
    directives = nginx_directives()
    assert kib(directives["client_max_body_size"][0]) == API_MAX_BODY_BYTES
    webhook = nginx_directives("/webhooks/clerk")
    assert kib(webhook["client_max_body_size"][0]) == CLERK_WEBHOOK_MAX_BODY_BYTES < API_MAX_BODY_BYTES
    count, size = directives["large_client_header_buffers"][0].split()
    assert int(count) * kib(size) <= MAX_HEADER_BYTES  # nothing nginx passes on is refused by uvicorn
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout", "proxy_read_timeout"):
        assert directives[name][0].endswith("s"), name
    assert int(directives["client_header_timeout"][0][:-1]) <= 10
    assert directives["limit_conn"] == ["per_client 64"]
    assert directives["limit_conn_zone"] == ["$binary_remote_addr zone=per_client:10m"]


def test_the_app_containers_have_memory_limits() -> None:
    limits = {name: COMPOSE["services"][name].get("mem_limit") for name in [*APP_SERVICES, "proxy"]}
    assert all(limits.values()), limits
