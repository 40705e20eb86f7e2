"""Prometheus metrics: off by default at no cost (nothing imported, no observer installed); on, a
live uvicorn with two worker processes counts a known set of requests exactly, whichever process
served each and whichever answers the scrape, on a port of its own."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.api.main import create_app
from app.api.request_log import AccessLog
from app.domains.users.api_keys import generate_api_key
from app.infrastructure.config import PROJECT_ROOT, Settings
from tests.helpers import CHEAP_ARGON2, settings_for, wait_until_healthy

PROBE = """
import sys
from app.api.main import create_app
create_app()
loaded = sorted({name.split(".")[0] for name in sys.modules if name.startswith(("prometheus_client", "opentelemetry"))})
print(",".join(loaded))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _clean_environment(tmp_path: Path) -> dict[str, str]:
    drop = ("METRICS_", "OTEL_", "PROMETHEUS_", "APP_METRICS_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(drop)}
    return {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}"}


def test_off_by_default_nothing_is_imported_and_no_observer_is_installed(tmp_path: Path, settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=_clean_environment(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == ""  # neither prometheus_client nor opentelemetry
    access = create_app(settings_for(settings.database_url)).asgi_handler
    assert isinstance(access, AccessLog)
    assert access.observe is None


@pytest.fixture
def two_workers(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """uvicorn --workers 2 with metrics on: the API's URL, the metrics URL, the samples' folder."""
    port, metrics_port = _free_port(), _free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **_clean_environment(tmp_path),
        "DATABASE_URL": settings.database_url,
        "WORKER_THREADS": "4",
        "LOG_LEVEL": "WARNING",
        "METRICS_ENABLED": "true",
        "METRICS_PORT": str(metrics_port),
        "METRICS_DIR": str(metrics_dir),
        **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.api.main:create_app", "--port", str(port)]
    server = subprocess.Popen([*command, "--workers", "2", "--no-access-log"], env=env, cwd=PROJECT_ROOT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(server, base_url, timeout=60)
        yield base_url, f"http://127.0.0.1:{metrics_port}/metrics", metrics_dir
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _count(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_two_worker_processes_count_every_request_once(two_workers: tuple[str, str, Path], as_user: Callable) -> None:
    base_url, metrics_url, metrics_dir = two_workers
    _, headers = as_user()
    wrong_key = {"X-API-Key": generate_api_key().key}
    sent = {("/api/users/me", "200"): 12, ("/api/users/me", "401"): 5, ("(unmatched)", "404"): 3}
    for _ in range(sent["/api/users/me", "200"]):  # a connection each: the kernel spreads them over the processes
        assert httpx.get(f"{base_url}/api/users/me", headers=headers).status_code == 200
    for number in range(sent["/api/users/me", "401"]):
        assert httpx.get(f"{base_url}/api/users/me", headers=wrong_key if number % 2 else {}).status_code == 401
    for _ in range(sent["(unmatched)", "404"]):
        assert httpx.get(f"{base_url}/no/such/{time.monotonic()}").status_code == 404

    writers = {path.name.rsplit("_", 1)[-1] for path in metrics_dir.glob("*/histogram_*.db")}
    assert len(writers) == 2, writers  # both worker processes wrote samples
    for _ in range(4):  # any process may answer a scrape: each gives the same sums
        samples = _samples(metrics_url)
        for (route, status), count in sent.items():
            labels = {"method": "GET", "route": route, "status": status}
            assert _count(samples, "app_http_request_duration_seconds_count", **labels) == count, (route, status)
            assert _count(samples, "app_http_request_duration_seconds_bucket", **labels, le="+Inf") == count
        refused = {
            dict(labels)["reason"]: value
            for (name, labels), value in samples.items()
            if name == "app_auth_refusals_total"
        }
        assert refused == {"missing": 3, "invalid_api_key": 2}
        assert (
            _count(samples, "app_argon2_verifications_total", result="valid") >= 1
        )  # the key's first use, per process
        assert ("app_db_pool_connections_in_use", frozenset()) in samples


def test_the_metrics_port_listens_on_loopback_by_default() -> None:
    assert Settings(_env_file=None).metrics_host == "127.0.0.1"
    assert Settings(_env_file=None).metrics_enabled is False


def test_each_server_instance_has_its_folder_and_stale_ones_are_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.infrastructure import prometheus

    monkeypatch.setenv(prometheus.RUN_DIR_VARIABLE, "")  # so that the value set below is undone after the test
    monkeypatch.delenv(prometheus.RUN_DIR_VARIABLE)
    stale = tmp_path / "999999999-12345"  # no such process
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"")
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    settings = Settings(_env_file=None, metrics_dir=str(tmp_path))
    run = prometheus.run_directory(settings)
    assert run.parent == tmp_path
    assert run.name == f"{os.getppid()}-{prometheus._start_time(os.getppid())}"  # shared by uvicorn's workers
    assert not stale.exists()
    assert unrelated.exists()  # not one of ours
    assert os.environ[prometheus.RUN_DIR_VARIABLE] == str(run)  # what this process's children use
    assert prometheus.run_directory(settings) == run
