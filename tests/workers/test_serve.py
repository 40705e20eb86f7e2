"""`task worker` as README describes it: no PREFECT_API_URL, so the worker starts one local Prefect
server, registers every registered flow on its schedule there as `<flow>/served` (FLOW_SCHEDULES
applied, overlapping runs cancelled) with the crash-detection automation, and stops on SIGTERM,
with no second temporary server and no telemetry."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx

from app.infrastructure.config import PROJECT_ROOT
from app.workers import crash_detection
from app.workers.flows import FLOWS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_starts_one_local_server_and_registers_every_flow() -> None:
    port = free_port()
    first, second, *_ = FLOWS
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "DATABASE_URL"))},
        "PREFECT_HOME": tempfile.mkdtemp(prefix="prefect-home-serve-"),
        "PREFECT_SERVER_API_PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tempfile.mkdtemp(prefix='serve-')}/app.db",
        "FLOW_SCHEDULES": f"{first}=17 4 * * *; {second}=off",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.workers.main", "serve"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stdout or ()), daemon=True)
    reader.start()
    try:
        api = f"http://127.0.0.1:{port}/api"
        deployments = registered(api, len(FLOWS), timeout=180)
        flows = {flow["id"]: flow["name"] for flow in httpx.post(f"{api}/flows/filter", json={}, timeout=5).json()}
        automations = httpx.post(f"{api}/automations/filter", json={}, timeout=5).json()
        # Deployments are registered before the runner's loop starts: a SIGTERM in between waits
        # for that start, so stop it once it says it serves (as an operator would).
        deadline = time.monotonic() + 120
        while not any("being served" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.2)
        # Prefect prints that just before its runner installs its SIGTERM handler: on a loaded
        # machine a SIGTERM at once could still find Python's default one (exit -15).
        time.sleep(3)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        reader.join(timeout=10)
    output = "".join(lines)
    assert worker.returncode == 0, output
    expected = {(name, "served"): [entry.cron] if entry.cron else [] for name, entry in FLOWS.items()}
    expected |= {(first, "served"): ["17 4 * * *"], (second, "served"): []}
    assert {(flows[d["flow_id"]], d["name"]): [s["schedule"]["cron"] for s in d["schedules"]] for d in deployments} == (
        expected
    )
    assert all(d["concurrency_options"]["collision_strategy"] == "CANCEL_NEW" for d in deployments)
    assert [automation["name"] for automation in automations] == [crash_detection.NAME]
    assert "Starting temporary server" not in output
    assert "telemetry" not in output.lower()


def registered(api: str, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
            if len(deployments) >= count:
                return deployments
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{count} deployments not registered in {timeout} s"
        time.sleep(0.5)
