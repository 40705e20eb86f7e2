"""Database faults against a live server: a PostgreSQL cluster of the test's own is stopped, frozen
and started under load, and the API answers 503 problems within its bounds, recovers without a
restart, and loses no acknowledged write.

The cluster is a throwaway one (initdb + pg_ctl from the server binaries on the machine, on a free
port, in a temporary folder); the test is skipped only where no PostgreSQL server can be started.
`pytest -s` prints the figures: worst latencies, statuses seen, recovery times, writes lost.
"""

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from alembic import command
from sqlalchemy import select

from app.bootstrap import bootstrap
from app.domains.base.actors import Actor, Role
from app.domains.users.models import User
from app.domains.users.schemas import APIKeyCreate, UserCreate
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.database import Database
from tests.helpers import CHEAP_ARGON2, alembic_config, settings_for

THREADS = 4
CLIENTS = 8  # more concurrent clients than worker threads: requests queue while the database hangs
# Short bounds keep the test short; the client gives up on a statement one second after the server would.
STATEMENT_TIMEOUT, CONNECT_TIMEOUT = 1, 1
LATENCY_BOUND = 6.0  # seconds: a request hung behind another one, then waited for a connection
READINESS_BOUND = 1.0
TARGETS = 3000  # users written once each: an acknowledged value must still be there at the end


def _server_binaries() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3].split(".")[0])
    )
    if on_path := shutil.which("initdb"):
        candidates.append(on_path)
    for initdb in reversed(candidates):
        if (Path(initdb).parent / "pg_ctl").exists():
            return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder; as root, its processes run as `postgres`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.root / "data"
        self.owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.owner = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 30) -> None:
        subprocess.run([*self.owner, str(self.bindir / tool), *args], check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=50 "
            "-c fsync=off -c full_page_writes=off"  # acknowledged commits still reach the OS before the reply
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: every server process quits at once, as in a crash (recovery at next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def processes(self) -> list[int]:
        """The postmaster first, then its children (backends and background processes)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    children.append(int(Path(stat).parts[2]))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP every server process: the kernel still accepts connections and acknowledges
        packets, nothing answers."""
        for pid in self.processes():  # the postmaster first: it forks no new backend once stopped
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for pid in reversed(self.processes()):
                os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        self.thaw()
        with contextlib.suppress(subprocess.SubprocessError):
            if (self.data / "postmaster.pid").exists():
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[ThrowawayCluster]:
    bindir = _server_binaries()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without `runuser` to start the server as `postgres`")
    cluster = ThrowawayCluster(bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@dataclass
class Fixtures:
    admin_key: str
    member_key: str
    targets: list[UUID]


def _migrate_and_populate(url: str) -> Fixtures:
    settings = settings_for(url)
    database = Database(settings)
    with database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    database.dispose()
    container = bootstrap(settings)
    try:
        with container.unit_of_work(Actor.system()) as uow:
            users = uow.service(UserService)
            keys = []
            for role in (Role.ADMIN, Role.MEMBER):
                user = users.create_user(UserCreate(email=f"{role}@example.com", role=role))
                owner = Actor.on_behalf_of(user.id, role)
                keys.append(uow.service(APIKeyService, actor=owner).issue(APIKeyCreate(name="faults"))[1])
            targets = [User(email=f"target-{number}@example.com") for number in range(TARGETS)]
            uow.session.add_all(targets)
        return Fixtures(keys[0], keys[1], [target.id for target in targets])
    finally:
        container.dispose()


class LiveApp:
    def __init__(self, database_url: str, log: Path, cwd: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "WORKER_THREADS": str(THREADS),
            "DATABASE_POOL_SIZE": str(THREADS),
            "DATABASE_STATEMENT_TIMEOUT_SECONDS": str(STATEMENT_TIMEOUT),
            "DATABASE_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
            "DATABASE_POOL_TIMEOUT": "2",
            "LOG_LEVEL": "WARNING",
            **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
        }
        command = [sys.executable, "-m", "uvicorn", "--factory", "app.api.main:create_app", "--port", str(self.port)]
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [*command, "--no-access-log"], env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@dataclass
class Outcome:
    started: float
    latency: float
    method: str
    status: int | str
    retry_after: str | None = None
    problem: bool = False
    target: UUID | None = None
    value: str | None = None


@dataclass
class Load:
    """CLIENTS threads, each reading /api/users/me and writing a fresh user's first name in turn."""

    base_url: str
    fixtures: Fixtures
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _targets: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)

    def _next_target(self) -> int | None:
        with self._lock:
            number = next(self._targets)
        return number if number < len(self.fixtures.targets) else None

    def _client(self, number: int) -> None:
        headers = {"X-API-Key": self.fixtures.admin_key}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=15) as client:
            for request in itertools.count():
                if self.stop.is_set():
                    return
                target = self._next_target() if request % 2 else None
                if target is None:
                    self._send(client, "GET", "/api/users/me", request_id=f"c{number}-{request}")
                else:
                    user_id = self.fixtures.targets[target]
                    value = f"w{target}"
                    self._send(client, "PATCH", f"/api/users/{user_id}", {"first_name": value}, user_id, value)
                time.sleep(0.02)

    def _send(self, client, method, path, body=None, target=None, value=None, request_id=None) -> None:
        started = time.monotonic()
        headers = {"X-Request-ID": request_id} if request_id else {}
        try:
            response = client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as error:
            self.outcomes.append(Outcome(started, time.monotonic() - started, method, type(error).__name__))
            return
        self.outcomes.append(
            Outcome(
                started,
                time.monotonic() - started,
                method,
                response.status_code,
                response.headers.get("retry-after"),
                response.headers.get("content-type", "").startswith("application/problem+json"),
                target,
                value,
            )
        )

    def since(self, moment: float) -> list[Outcome]:
        return [outcome for outcome in list(self.outcomes) if outcome.started >= moment]

    def recovery_after(self, moment: float, limit: float = 15) -> float:
        """Seconds from `moment` to the end of the first 200 among requests started after it."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            done = [o.started + o.latency for o in self.since(moment) if o.status == 200]
            if done:
                return min(done) - moment
            time.sleep(0.05)
        raise AssertionError(f"no request succeeded within {limit} s of the database coming back")


def _records_with_a_traceback(log: str) -> int:
    """Log records carrying a traceback (a chained exception's traceback follows a blank line)."""
    lines = log.splitlines()
    return sum(1 for before, line in itertools.pairwise(lines) if line.startswith("Traceback") and before.strip())


def _timed_get(url: str, **kwargs: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=15, **kwargs)
    return response, time.monotonic() - started


def _assert_503_problem(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"].isdigit()


def test_database_faults_under_load(cluster: ThrowawayCluster, tmp_path: Path) -> None:
    started = time.monotonic()
    fixtures = _migrate_and_populate(cluster.url)
    log = tmp_path / "server.log"
    figures: dict[str, object] = {}
    app = LiveApp(cluster.url, log, tmp_path)
    try:
        ready, _ = _timed_get(f"{app.base_url}/health/ready")
        assert ready.status_code == 200, ready.text
        with Load(app.base_url, fixtures) as load:
            time.sleep(1.5)
            assert any(o.status == 200 for o in load.outcomes), Counter(o.status for o in load.outcomes)

            # (1) the cluster stops (as in a crash), stays down, starts again
            stopped = time.monotonic()
            cluster.stop("immediate")
            time.sleep(3)
            cluster.start()
            back = time.monotonic()
            figures["stop: recovery after start (s)"] = round(load.recovery_after(back), 2)
            stop_phase = [o for o in load.since(stopped) if o.started < back]
            time.sleep(1)

            # (2) the cluster freezes (SIGSTOP), then thaws (SIGCONT)
            ready, _ = _timed_get(f"{app.base_url}/health/ready")  # the probe has a pooled connection
            assert ready.status_code == 200, ready.text
            freezing = time.monotonic()
            cluster.freeze()
            frozen = time.monotonic()  # requests started before this may have been answered
            readiness = []
            try:
                for _ in range(3):
                    time.sleep(0.7)
                    response, latency = _timed_get(f"{app.base_url}/health/ready")
                    readiness.append((response.status_code, round(latency, 2)))
                time.sleep(max(0, 4.2 - (time.monotonic() - freezing)))
            finally:
                thawed = time.monotonic()
                cluster.thaw()
            figures["freeze: recovery after SIGCONT (s)"] = round(load.recovery_after(thawed), 2)
            freeze_phase = [o for o in load.since(frozen) if o.started < thawed]
            time.sleep(1)
        outcomes = list(load.outcomes)
        app.stop()

        # (3) the app starts while the database is down, then the database starts
        cluster.stop("fast")
        app = LiveApp(cluster.url, log, tmp_path)
        liveness, _ = _timed_get(f"{app.base_url}/health")
        down_ready, down_ready_latency = _timed_get(f"{app.base_url}/health/ready")
        headers = {"X-API-Key": fixtures.member_key}
        down_api, down_api_latency = _timed_get(f"{app.base_url}/api/users/me", headers=headers)
        cluster.start()
        back = time.monotonic()
        deadline = back + 15
        while (response := httpx.get(f"{app.base_url}/api/users/me", headers=headers, timeout=15)).status_code != 200:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.05)
        figures["start while down: recovery after start (s)"] = round(time.monotonic() - back, 2)
        up_ready, _ = _timed_get(f"{app.base_url}/health/ready")
    finally:
        app.stop()

    # (4) every acknowledged write is in the database
    acknowledged = {o.target: o.value for o in outcomes if o.method == "PATCH" and o.status == 200}
    database = Database(settings_for(cluster.url))
    with database.session() as session:
        stored = dict(session.execute(select(User.id, User.first_name).where(User.id.in_(acknowledged))).all())
    database.dispose()
    lost = sorted(str(target) for target, value in acknowledged.items() if stored.get(target) != value)

    server_log = log.read_text()
    figures |= {
        "requests": len(outcomes),
        "statuses (whole run)": dict(Counter(o.status for o in outcomes)),
        "stop: statuses": dict(Counter(o.status for o in stop_phase)),
        "stop: worst latency (s)": round(max(o.latency for o in stop_phase), 2),
        "worst latency of the whole run (s)": round(max(o.latency for o in outcomes), 2),
        "freeze: statuses": dict(Counter(o.status for o in freeze_phase)),
        "freeze: worst latency (s)": round(max(o.latency for o in freeze_phase), 2),
        "freeze: /health/ready (status, s)": readiness,
        "start while down: /health, /health/ready (s), API (s)": (
            liveness.status_code,
            (down_ready.status_code, round(down_ready_latency, 2)),
            (down_api.status_code, round(down_api_latency, 2)),
        ),
        "writes acknowledged / lost": (len(acknowledged), len(lost)),
        "server log: 'database unavailable' lines / records with a traceback": (
            server_log.count("database unavailable: "),
            _records_with_a_traceback(server_log),
        ),
        "wall time (s)": round(time.monotonic() - started, 1),
    }
    print("\ndatabase faults under load:")
    for name, value in figures.items():
        print(f"  {name}: {value}")

    assert not lost, f"acknowledged writes lost: {lost[:10]}"
    assert {o.status for o in outcomes} <= {200, 503}, Counter(o.status for o in outcomes)
    assert all(o.retry_after and o.problem for o in outcomes if o.status == 503)
    assert any(o.status == 503 for o in stop_phase)
    assert any(o.status == 503 for o in freeze_phase)
    assert max(o.latency for o in outcomes) < LATENCY_BOUND
    assert all(status == 503 and latency < READINESS_BOUND for status, latency in readiness), readiness
    assert liveness.status_code == 200
    _assert_503_problem(down_api)
    assert down_ready.status_code == 503
    assert down_ready_latency < READINESS_BOUND
    assert up_ready.status_code == 200
    assert "unhandled error" not in server_log
    assert "never retrieved" not in server_log
    # One traceback per outage at most: the stop, the freeze, and the second app's start while down.
    assert 1 <= _records_with_a_traceback(server_log) <= 3, server_log[-3000:]
