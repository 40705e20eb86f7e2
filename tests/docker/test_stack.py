"""The images and the compose stack, for real (`task test-docker`; excluded from `task test`).

Builds every target, compares their sizes, then runs the whole stack under a throwaway project name,
env file and free host ports: migrations exit 0, the API is ready, the worker has registered its
deployments with the Prefect server and runs a `maintenance` flow run against the stack's database,
and api and worker stop promptly on SIGTERM. `down -v` always runs.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from app.infrastructure.config import PROJECT_ROOT
from app.workers.flows import FLOWS
from tests.raw_http import Answer, connect, read_answer, request_head, send_quietly, trickle_until_answer

pytestmark = pytest.mark.docker

TARGETS = ["api", "worker", "migrations"]
IMAGE = "app-docker-test"
DEV_TOOLS = ("pytest", "ruff", "mypy", "schemathesis", "uv")
DEPLOYMENTS = {(name, "served") for name in FLOWS}  # the worker serves every registered flow: <flow>/served
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
    api_port: int  # nginx's: the only way in to the API
    prefect_port: int
    proxy_address: str  # on the proxy-api network

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
    # A /24 of its own for the proxy-api network: the default one may be in use by a running stack.
    edge_network = f"10.254.{secrets.randbelow(250)}"
    base = [
        *compose_command(),
        "-p",
        project,
        "-f",
        str(PROJECT_ROOT / "docker-compose.yml"),
        "--env-file",
        str(env_file),
    ]
    environment = {
        **os.environ,
        "DOCKER_ENV_FILE": str(env_file),
        "EDGE_NETWORK": edge_network,
        **{k: str(v) for k, v in ports.items()},
    }

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

    stack = Stack(compose, project, ports["API_PORT"], ports["PREFECT_PORT"], f"{edge_network}.2")
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
        flows = {flow["id"]: flow["name"] for flow in stack.prefect("POST", "/flows/filter", {})}
        served = {(flows.get(d["flow_id"]), d["name"]) for d in stack.prefect("POST", "/deployments/filter", {})}
        return served >= DEPLOYMENTS

    wait_until("the worker's deployments on the Prefect server", registered, timeout=120)


def test_a_maintenance_run_completes_on_the_stack_database(stack: Stack) -> None:
    """Triggered through the Prefect API, run by the serving worker, against dbapp."""
    stack.psql(
        "insert into webhook_events (id, created_at, updated_at, source, svix_id, type, payload, received_at) values "
        "(gen_random_uuid(), now(), now(), 'clerk', 'msg_old', 'user.created', '{}', now() - interval '400 days'),"
        "(gen_random_uuid(), now(), now(), 'clerk', 'msg_new', 'user.created', '{}', now())"
    )
    deployment = wait_until(
        "maintenance/served", lambda: stack.prefect("GET", "/deployments/name/maintenance/served"), timeout=120
    )
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


def test_the_api_image_without_settings_says_so_in_one_line(images: dict[str, str]) -> None:
    """Its SQLite default is under code it may not write: one line, not a 60-line traceback."""
    done = docker("run", "--rm", images["api"], check=False, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("invalid settings: DATABASE_URL: the SQLite folder /srv/var cannot be used")


# -- the edge: nginx in front of the API ---------------------------------------------------------

NGINX_TIMEOUT = 10.0  # client_header_timeout and client_body_timeout in deploy/nginx/api.conf
SLACK = 5.0  # a loaded 2-core machine
FAKE_KEY = "sk_0123456789abcdef_" + "A" * 43  # well-formed, unknown


def get(stack: Stack, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{stack.api_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def log_lines(stack: Stack, service: str) -> list[str]:
    """The service's log lines without compose's `name_1  | ` prefix."""
    lines = stack.compose("logs", "--no-color", service).stdout.splitlines()
    return [line.split("| ", 1)[1] for line in lines if "| " in line]


def test_the_api_is_published_only_through_the_proxy(stack: Stack) -> None:
    assert docker("port", stack.container("api")).stdout.strip() == ""
    status, headers, _ = get(stack, "/health/ready", {})
    assert (status, headers["Server"]) == (200, "nginx")


def test_the_api_sees_the_address_the_proxy_saw_never_a_forged_one(stack: Stack) -> None:
    """nginx overwrites X-Forwarded-For with its peer's address; uvicorn believes it from nginx only."""
    request_id = f"xff-{secrets.token_hex(8)}"
    forged = "203.0.113.9"
    headers = {"X-API-Key": FAKE_KEY, "X-Forwarded-For": forged, "X-Request-ID": request_id}
    assert get(stack, "/api/users/me", headers)[0] == 401

    def lines() -> tuple[str, str] | None:
        proxy = [line for line in log_lines(stack, "proxy") if f"request_id={request_id}" in line]
        api = [line for line in log_lines(stack, "api") if request_id in line and "authentication refused" in line]
        return (proxy[0], api[0]) if proxy and api else None

    proxy_line, api_line = wait_until("both log lines of the request", lines, timeout=20)
    peer = proxy_line.split()[0]  # nginx's $remote_addr
    seen = re.search(r" from (\S+)$", json.loads(api_line)["msg"])[1]  # type: ignore[index]
    assert seen == peer
    assert seen not in {forged, stack.proxy_address}


def slow_headers(port: int) -> Answer:
    """Slowloris: the request line, then a header byte every second."""
    sock, started = connect(port), time.monotonic()
    send_quietly(sock, b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: edge-slow-headers\r\n")
    return trickle_until_answer(sock, b"X-Slow: " + b"a" * 100, every=1.0, started=started, timeout=60)


def stalled_body(
    port: int, path: str = "/webhooks/clerk", size: int = 1000, request_id: str = "edge-stalled"
) -> Answer:
    """All of a body but its last byte, then nothing."""
    sock, started = connect(port), time.monotonic()
    head = request_head("POST", path, {"Content-Length": str(size), "X-Request-ID": request_id})
    send_quietly(sock, head + b" " * (size - 1))
    return read_answer(sock, started, timeout=NGINX_TIMEOUT + 30)


def oversized(port: int, head: bytes) -> Answer:
    sock, started = connect(port), time.monotonic()
    send_quietly(sock, head)
    return read_answer(sock, started, timeout=30)


def test_slow_and_oversized_requests_are_cut_off_at_the_proxy(stack: Stack) -> None:
    port = stack.api_port
    big_header = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: edge-big\r\nX-Big: " + b"a" * 16_000_000
    many_headers = b"GET /health HTTP/1.1\r\nX-Request-ID: edge-many\r\n" + b"".join(
        b"X-%d: v\r\n" % n for n in range(100_000)
    )
    webhook = request_head("POST", "/webhooks/clerk", {"Content-Length": "70000", "X-Request-ID": "edge-webhook"})
    announced = request_head("POST", "/api/users", {"Content-Length": "10000000", "X-Request-ID": "edge-announced"})
    cases: dict[str, Callable[[], Answer]] = {
        "slow headers": lambda: slow_headers(port),
        "stalled body": lambda: stalled_body(port),
        "16 MB header": lambda: oversized(port, big_header + b"\r\n\r\n"),
        "100 000 headers": lambda: oversized(port, many_headers + b"\r\n"),
        "70 KB webhook body": lambda: oversized(port, webhook + b" " * 70_000),
        "10 MB body announced": lambda: oversized(port, announced + b" " * 1000),
    }
    with ThreadPoolExecutor(len(cases)) as pool:
        answers = dict(zip(cases, pool.map(lambda case: case(), cases.values()), strict=True))
    print(
        "\nthrough the proxy: "
        + "; ".join(f"{name}: {a.status} after {a.seconds:.1f} s" for name, a in answers.items())
    )
    for name in ("slow headers", "stalled body"):  # nginx hangs up on them (its 408 is never sent)
        answer = answers[name]
        assert answer.closed, (name, answer)
        assert answer.status in {None, 408}, (name, answer)
        assert NGINX_TIMEOUT - 1 <= answer.seconds <= NGINX_TIMEOUT + SLACK, (name, answer)
    for name, status in [("16 MB header", 400), ("100 000 headers", 400), ("70 KB webhook body", 413)]:
        answer = answers[name]
        assert (answer.status, answer.closed) == (status, True), (name, answer)
        assert answer.problem()["status"] == status
        assert answer.seconds < SLACK, (name, answer)
    assert answers["10 MB body announced"].status == 413
    assert answers["10 MB body announced"].seconds < SLACK
    api_log = "\n".join(log_lines(stack, "api"))
    assert not re.search(r"edge-(slow-headers|stalled|big|many|webhook|announced)", api_log)  # none reached the API


class ContainerMemory:
    """Samples the RSS of a container's PID 1 (uvicorn in `api`) in a thread; MB = 10^6 bytes."""

    def __init__(self, container: str) -> None:
        self.container = container
        self.samples, self._stop = [self.rss_mb()], threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss_mb(self) -> float:
        status = docker("exec", self.container, "cat", "/proc/1/status").stdout
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)[1]) * 1024 / 1e6  # type: ignore[index]

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(self.rss_mb())

    def __enter__(self) -> "ContainerMemory":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_200_slow_connections_through_the_proxy_leave_the_api_small(stack: Stack) -> None:
    """100 slowloris connections and 100 stalled webhook bodies at once, from one address: nginx holds
    them (64 bodies at most per address, the rest 429 at once) and the API sees none of them."""
    port = stack.api_port
    size = 64 * 1024  # the webhook route's bound: the largest body nginx would hold
    with ContainerMemory(stack.container("api")) as memory, ThreadPoolExecutor(200) as pool:
        started = time.monotonic()
        futures = [pool.submit(slow_headers, port) for _ in range(100)]
        futures += [pool.submit(stalled_body, port, "/webhooks/clerk", size, "edge-rss") for _ in range(100)]
        answers = [future.result() for future in futures]
        elapsed = time.monotonic() - started
    held = [answer for answer in answers[100:] if answer.status is None]
    refused = Counter(answer.status for answer in answers[100:] if answer.status is not None)
    print(
        f"\n200 slow connections through the proxy: api RSS {memory.samples[0]:.0f} MB before, peak "
        f"{max(memory.samples):.0f} MB; bodies held {len(held)}, refused {dict(refused)}; all over in {elapsed:.1f} s"
    )
    assert all(answer.closed and answer.status in {None, 408} for answer in answers[:100])
    assert len(held) <= 64
    assert refused == Counter({429: 100 - len(held)})
    assert max(answer.seconds for answer in answers) <= NGINX_TIMEOUT + SLACK * 2
    assert max(memory.samples) < 300
    assert http_status(f"http://127.0.0.1:{port}/health/ready") == 200


CREATE_MEMBERS = """
from app.cli import generate_user
for name in ("victim", "attacker-1", "attacker-2"):
    generate_user(["--email", f"{name}@example.com", "--role", "member", "--json"])
"""


def test_wrong_secrets_from_the_same_address_never_refuse_a_first_use_of_a_valid_key(stack: Stack) -> None:
    """An attacker with two member keys sends wrong secrets for its own prefixes and for the victim's
    next key (prefixes are public), through the proxy like everyone: the failure limits engage (429s),
    yet each first use of a valid key, by a client at the same address, succeeds."""
    created = stack.compose("exec", "-T", "api", "python", "-c", CREATE_MEMBERS).stdout.splitlines()
    victim, *attackers = [json.loads(line)["api_key"] for line in created if line.startswith("{")]
    tries = 20
    fresh = []
    for number in range(tries):  # the victim's new keys: none has been used, so each use is a first use
        request = urllib.request.Request(
            f"http://127.0.0.1:{stack.api_port}/api/api-keys",
            data=json.dumps({"name": f"fresh {number}"}).encode(),
            headers={"X-API-Key": victim, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            fresh.append(json.load(response)["key"])

    def wrong(key: str) -> str:
        return f"{key.rsplit('_', 1)[0]}_{secrets.token_urlsafe(32)}"

    target = {"prefix_of": fresh[0]}
    attacks: Counter[int] = Counter()
    stop = threading.Event()

    def attacker() -> None:
        while not stop.is_set():
            for key in [*attackers, target["prefix_of"]]:
                attacks[get(stack, "/api/users/me", {"X-API-Key": wrong(key)})[0]] += 1

    outcomes: Counter[int] = Counter()
    with ThreadPoolExecutor(3) as pool:
        running = [pool.submit(attacker) for _ in range(3)]
        try:
            for key in fresh:
                target["prefix_of"] = key
                for _ in range(12):  # past AUTH_FAILURES_PER_KEY (10) on this very prefix first
                    attacks[get(stack, "/api/users/me", {"X-API-Key": wrong(key)})[0]] += 1
                outcomes[get(stack, "/api/users/me", {"X-API-Key": key})[0]] += 1
        finally:
            stop.set()
            for future in running:
                future.result()
    print(f"\nfirst uses under attack: {dict(outcomes)}; the attacker's wrong secrets: {dict(attacks)}")
    assert outcomes[200] >= 0.95 * tries, outcomes
    assert attacks[429] > 0  # the limits were engaged: the test is not vacuous
    assert set(attacks) <= {401, 429}


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
