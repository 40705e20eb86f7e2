"""The worker's entry point.

    python -m app.workers.main serve              # every flow on its schedule, and the jobs (`task worker`)
    python -m app.workers.main run maintenance --batch-size 500     # one flow, now (`task flow`)

`serve` talks to PREFECT_API_URL; without one it starts a local Prefect server for as long as it
runs. It registers each flow as the deployment `<flow>/served` (prefect.yaml's are `<flow>/pool`, so
neither path overwrites the other's), with the concurrency policy of app/workers/policy.py, and
makes sure the server marks dead runs Crashed (crash_detection.py). Its schedules are not paused on
shutdown (`pause_on_shutdown=False`), so a restarted container keeps them. For several workers on
several machines, deploy the same flows to a process work pool instead (prefect.yaml, README's
"Workers").
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.context import refresh_global_settings_context
from prefect.exceptions import FailedRun
from prefect.schedules import Cron
from prefect.settings import get_current_settings

from app.infrastructure.config import Settings
from app.workers.crash_detection import ensure_crash_detection
from app.workers.flows import FLOWS
from app.workers.jobs import Dispatcher
from app.workers.policy import concurrency
from app.workers.registry import FlowRegistry
from app.workers.runtime import container

SERVED = "served"  # `serve`'s deployments: <flow>/served


def deployments(settings: Settings, flows: FlowRegistry = FLOWS) -> list[Any]:
    """One deployment per registered flow, `<flow>/served`, on its schedule (UTC), with its
    concurrency limit (a run beyond it is cancelled)."""
    try:
        schedules = flows.schedules(settings.flow_schedules)
    except ValueError as error:
        raise SystemExit(f"invalid settings: {error}") from None
    return [
        flows[name].flow.to_deployment(
            name=SERVED,
            schedules=[Cron(cron, timezone="UTC")] if cron else [],
            concurrency_limit=concurrency(flows[name].concurrency_limit),
        )
        for name, cron in schedules.items()
    ]


@contextmanager
def prefect_api() -> Iterator[str]:
    """PREFECT_API_URL (from the environment or Prefect's profile), or a local Prefect server
    started for the worker's lifetime.

    Prefect read its settings at import: the local server's URL goes into the environment and
    Prefect's global settings are read again, or the runner's threads, which see only the global
    settings, would start a temporary server of their own (as they did: ~6 s of CPU, and a second
    server to keep running).
    """
    settings = get_current_settings()
    if url := settings.api.url:
        yield url
        return
    port = str(settings.server.api.port)  # PREFECT_SERVER_API_PORT, 4200 unless set
    url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", port]
    )
    try:
        wait_for(f"{url}/health", timeout=120)  # a first start creates Prefect's database
        os.environ["PREFECT_API_URL"] = url
        refresh_global_settings_context()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (a loopback URL we built)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def serve(flows: FlowRegistry = FLOWS) -> None:
    """The scheduled flows, and the background jobs' dispatcher in a thread beside them."""
    from prefect import serve as prefect_serve  # noqa: PLC0415

    settings = container().settings
    served = deployments(settings, flows)  # a bad FLOW_SCHEDULES stops it before any server starts
    if settings.metrics_enabled:  # the jobs', the flow runs' (their processes write to the same place), the pool's
        from app.infrastructure import prometheus  # noqa: PLC0415

        prometheus.enable(settings).sample_pool(container().database.engine.pool)
        prometheus.serve(settings.metrics_host, settings.worker_metrics_port)
    with prefect_api(), dispatching():
        ensure_crash_detection(flows)
        prefect_serve(*served, pause_on_shutdown=False)


@contextmanager
def dispatching() -> Iterator[Dispatcher]:
    """The job dispatcher, running until the block ends (it finishes the jobs it started)."""
    dispatcher = Dispatcher()
    thread = threading.Thread(target=dispatcher.run_forever, name="job-dispatcher", daemon=True)
    thread.start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        thread.join(timeout=dispatcher.lease_seconds)


def run(name: str, parameters: dict[str, Any]) -> Any:
    """One flow, now, in this process (Prefect runs it against PREFECT_API_URL, or ephemerally)."""
    return FLOWS[name].flow(**parameters)


def _parameters(pairs: list[str]) -> dict[str, Any]:
    """`--batch-size 500 --since-hours 48` -> {"batch_size": 500, "since_hours": 48} (JSON values)."""
    if len(pairs) % 2:
        raise SystemExit("parameters come in pairs: --name value")
    parameters = {}
    for flag, raw in zip(pairs[::2], pairs[1::2], strict=True):
        if not flag.startswith("--"):
            raise SystemExit(f"expected --name, got {flag!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parameters[flag[2:].replace("-", "_")] = value
    return parameters


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.workers.main")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve every flow on its schedule")
    one = commands.add_parser("run", help="run one flow now, in this process")
    one.add_argument("flow", choices=sorted(FLOWS))
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        serve()
        return
    try:
        result = run(args.flow, _parameters(rest))
    except FailedRun as failed:  # failed steps, a skipped run: the state's message says which
        raise SystemExit(str(failed)) from None
    print(json.dumps(result, default=str))  # noqa: T201


if __name__ == "__main__":
    main()
