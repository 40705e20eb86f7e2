"""The images and the compose stack, for real (`task test-docker`; excluded from `task test`).

Builds every target, compares their sizes, then runs the whole stack under a throwaway project name,
env file and free host ports: migrations exit 0, the API is ready, the worker has registered its
deployments with the Prefect server and runs a `maintenance` flow run against the stack's database,
and api and worker stop promptly on SIGTERM. `down -v` always runs.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.infrastructure.config import PROJECT_ROOT
from app.workers.flows import FLOWS

pytestmark = pytest.mark.docker

TARGETS = ["api", "worker", "migrations"]
IMAGE = "app-docker-test"
DEV_TOOLS = ("pytest", "ruff", "mypy", "schemathesis", "uv")
DEPLOYMENTS = set(FLOWS)  # the worker serves every registered flow
VENV = "/srv/.venv"
STOP_SECONDS = 8.0  # under docker stop's 10 s, after which SIGKILL (exit 137); ~0.5-4 s seen, by load


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def compose_command() -> list[str]:
    """The `docker compose` plugin where it exists, else the standalone v1 `docker-compose`."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("a Docker engine but neither `docker compose` nor `docker-compose`")


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no Docker engine: the docker command is not installed")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False, timeout=60)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or [f"exit {info.returncode}"])[-1]
        pytest.skip(f"no Docker engine: `docker info` failed: {reason}")


@pytest.fixture(scope="module")
def project() -> str:
    return f"apptest{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def images(engine: None) -> dict[str, str]:
    """Every target, built by `docker build`; compose's build reuses the layers. The tags stay, so
    the next run (and `task docker-build-all`) starts from a warm layer cache."""
    tags = {target: f"{IMAGE}:{target}" for target in TARGETS}
    for target, tag in tags.items():
        built = docker("build", "--target", target, "-t", tag, str(PROJECT_ROOT), check=False, timeout=900)
        assert built.returncode == 0, f"building {target}:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    return tags


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@dataclass
class Stack:
    compose: Callable[..., subprocess.CompletedProcess[str]]
    project: str
    api_port: int
    prefect_port: int

    def container(self, service: str) -> str:
        found = docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip
        assert len(found) == 1, (service, found)
        return found[0]

    def prefect(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.prefect_port}/api{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)

    def psql(self, sql: str) -> str:
        done = self.compose("exec", "-T", "dbapp", "psql", "-U", "app", "-d", "app", "-tAc", sql)
        return done.stdout.strip()


def wait_until(what: str, condition: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except (OSError, urllib.error.URLError, ValueError, KeyError) as error:
            last = error
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:g} s (last error: {last!r})")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a loopback URL)
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def stack(images: dict[str, str], project: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env_file = tmp_path_factory.mktemp("stack") / "docker.env"
    # The example's names with fresh secrets: the same file a user writes, nothing from the repo's docker.env.
    lines = (PROJECT_ROOT / "docker.env.example").read_text().splitlines()
    names = [line.split("=", 1)[0] for line in lines if line.strip() and not line.startswith("#")]
    env_file.write_text("".join(f"{name}={secrets.token_urlsafe(16)}\n" for name in names))
    ports = {"API_PORT": free_port(), "PREFECT_PORT": free_port()}
    base = [
        *compose_command(),
        "-p",
        project,
        "-f",
        str(PROJECT_ROOT / "docker-compose.yml"),
        "--env-file",
        str(env_file),
    ]
    environment = {**os.environ, "DOCKER_ENV_FILE": str(env_file), **{k: str(v) for k, v in ports.items()}}

    def compose(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*base, *args], capture_output=True, text=True, env=environment, cwd=PROJECT_ROOT, timeout=timeout,
            check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            pytest.fail(
                f"compose {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    stack = Stack(compose, project, ports["API_PORT"], ports["PREFECT_PORT"])
    try:
        compose("up", "-d", "--build")
        wait_until(
            "the API answers /health/ready",
            lambda: http_status(f"http://127.0.0.1:{stack.api_port}/health/ready") == 200,
            timeout=180,
        )
        yield stack
    finally:
        logs = compose("logs", "--no-color", "--tail", "60", check=False).stdout
        print(f"\n--- compose logs ({project}) ---\n{logs[-8000:]}")
        compose("down", "-v", "--remove-orphans", "--rmi", "local", check=False, timeout=300)


def test_image_sizes(images: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Printed for DOCKER.md; asserts only that Prefect is what makes the worker larger."""
    rows = {}
    for target, tag in images.items():
        size = int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout)
        venv = int(docker("run", "--rm", "--entrypoint", "du", tag, "-sb", VENV).stdout.split()[0])
        rows[target] = (size // 1_000_000, venv // 1_000_000)  # both in MB, apparent sizes
    with capsys.disabled():
        print(f"\n{'target':<12}{'image MB':>10}{'venv MB':>10}")
        for target, (size, venv) in rows.items():
            print(f"{target:<12}{size:>10}{venv:>10}")
        print(f"{'worker-api':<12}{rows['worker'][0] - rows['api'][0]:>10}{rows['worker'][1] - rows['api'][1]:>10}")
    assert rows["worker"][1] > rows["api"][1]
    assert rows["migrations"][1] == rows["api"][1]  # the same virtualenv


def test_the_api_image_has_no_prefect(images: dict[str, str]) -> None:
    api = docker("run", "--rm", images["api"], "python", "-c", "import prefect", check=False)
    assert api.returncode == 1
    assert "No module named 'prefect'" in api.stderr
    worker = docker("run", "--rm", images["worker"], "python", "-c", "import prefect", check=False)
    assert worker.returncode == 0, worker.stderr


def test_the_images_run_as_an_unprivileged_user_without_dev_tools(images: dict[str, str]) -> None:
    for tag in images.values():
        probe = f"import os, importlib.util as u; print(os.getuid(), *[m for m in {DEV_TOOLS} if u.find_spec(m)])"
        assert docker("run", "--rm", tag, "python", "-c", probe).stdout.split() == ["10001"], tag


def test_migrations_ran_and_exited_zero(stack: Stack) -> None:
    state = json.loads(docker("inspect", "-f", "{{json .State}}", stack.container("migrations")).stdout)
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert stack.psql("select count(*) from alembic_version") == "1"


def test_the_api_is_ready_on_its_published_port(stack: Stack) -> None:
    assert http_status(f"http://127.0.0.1:{stack.api_port}/health/ready") == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.api_port}/health/", timeout=5) as response:
        assert json.load(response) == {"status": "ok"}


def test_the_worker_registered_every_deployment(stack: Stack) -> None:
    def registered() -> bool:
        return {d["name"] for d in stack.prefect("POST", "/deployments/filter", {})} >= DEPLOYMENTS

    wait_until("the worker's deployments on the Prefect server", registered, timeout=120)


def test_a_maintenance_run_completes_on_the_stack_database(stack: Stack) -> None:
    """Triggered through the Prefect API, run by the serving worker, against dbapp."""
    stack.psql(
        "insert into webhook_events (id, created_at, updated_at, source, svix_id, type, payload, received_at) values "
        "(gen_random_uuid(), now(), now(), 'clerk', 'msg_old', 'user.created', '{}', now() - interval '400 days'),"
        "(gen_random_uuid(), now(), now(), 'clerk', 'msg_new', 'user.created', '{}', now())"
    )
    wait_until("the deployments", lambda: stack.prefect("POST", "/deployments/filter", {}), timeout=120)
    deployment = next(d for d in stack.prefect("POST", "/deployments/filter", {}) if d["name"] == "maintenance")
    run = stack.prefect("POST", f"/deployments/{deployment['id']}/create_flow_run", {})

    def finished() -> str | None:
        state = stack.prefect("GET", f"/flow_runs/{run['id']}")["state"]["type"]
        return state if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

    assert wait_until("the maintenance flow run", finished, timeout=180) == "COMPLETED"
    assert stack.psql("select svix_id from webhook_events order by svix_id") == "msg_new"


def test_api_and_worker_report_healthy(stack: Stack) -> None:
    """The images' HEALTHCHECKs: uvicorn's liveness, and the Prefect runner's own /health."""
    for service in ("api", "worker"):
        container = stack.container(service)

        def healthy(container: str = container) -> bool:
            return docker("inspect", "-f", "{{.State.Health.Status}}", container).stdout.strip() == "healthy"

        wait_until(f"{service} healthy", healthy, timeout=90)


def test_api_and_worker_stop_promptly_and_cleanly_on_sigterm(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    timings = {}
    for service in ("api", "worker"):
        container = stack.container(service)
        started = time.monotonic()
        docker("stop", container, timeout=60)
        timings[service] = time.monotonic() - started
        assert docker("inspect", "-f", "{{.State.ExitCode}}", container).stdout.strip() == "0", service
    with capsys.disabled():
        print("\ndocker stop: " + ", ".join(f"{service} {seconds:.1f} s" for service, seconds in timings.items()))
    assert max(timings.values()) < STOP_SECONDS, timings
