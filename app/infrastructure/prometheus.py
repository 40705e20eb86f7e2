"""Prometheus metrics, imported only with METRICS_ENABLED (the API and the worker do the same).

Several processes, one answer: uvicorn's `--workers`, and the flow runs the worker starts, each
write their samples to files in one directory (prometheus_client's multiprocess mode), and whoever
answers a scrape sums the files of every process. The directory is one per server instance, under
METRICS_DIR (default: `<tmp>/app-metrics`): named after the process that started the server's
processes (uvicorn's supervisor, or the worker) and its start time, which every process of the
instance shares; at start, the directories of instances no longer running are deleted. Processes
started by one of ours (a flow run) inherit the directory through `APP_METRICS_RUN_DIR`.

Served on METRICS_HOST:METRICS_PORT (the worker: WORKER_METRICS_PORT), 127.0.0.1 by default: a
port apart from the API's, which the proxy in front never routes to and which nothing outside the
machine (or the container) reaches unless an operator publishes it. Every API process listens on
the port (SO_REUSEPORT) and any of them answers, with the same sums.
"""

import os
import shutil
import socketserver
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from app.infrastructure import metrics
from app.infrastructure.config import Settings

RUN_DIR_VARIABLE = "APP_METRICS_RUN_DIR"
# Seconds: a request's latency, a job's wait in the queue and run.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLOW_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
SAMPLE_SECONDS = 1.0  # how often the database pool's gauges are read
UNMATCHED = "(unmatched)"  # the route label of a request no route matched (404, 405): paths would not be bounded


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "0": with the pid, it names
    one process for good (pids are reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    return stat.rsplit(")", 1)[1].split()[19]


def run_directory(settings: Settings) -> Path:
    """This server instance's directory of samples, created; stale instances' deleted."""
    if inherited := os.environ.get(RUN_DIR_VARIABLE):
        return Path(inherited)
    base = Path(settings.metrics_dir or Path(tempfile.gettempdir()) / "app-metrics")
    owner = os.getppid() or os.getpid()  # uvicorn's supervisor, or whoever started this process
    run = base / f"{owner}-{_start_time(owner)}"
    run.mkdir(parents=True, exist_ok=True)
    for other in base.iterdir():
        pid, _, started = other.name.partition("-")
        if other != run and pid.isdigit() and _start_time(int(pid)) != started:
            shutil.rmtree(other, ignore_errors=True)
    os.environ[RUN_DIR_VARIABLE] = str(run)
    return run


class PrometheusRecorder(metrics.Recorder):
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram  # noqa: PLC0415 (only when enabled)

        self.requests = Histogram(
            "app_http_request_duration_seconds",
            "Requests by method, route template and status, and their latency (_count: the requests)",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
        )
        self.pool_in_use = Gauge(
            "app_db_pool_connections_in_use", "Database connections checked out", multiprocess_mode="livesum"
        )
        self.pool_waiting = Gauge(
            "app_db_pool_waiting_threads", "Threads waiting for a database connection", multiprocess_mode="livesum"
        )
        self.argon2 = Counter("app_argon2_verifications", "argon2 verifications run, by result", ["result"])
        self.argon2_wait = Histogram(
            "app_argon2_wait_seconds", "Wait for an argon2 slot before a verification", buckets=LATENCY_BUCKETS
        )
        self.refusals = Counter("app_auth_refusals", "Requests refused for their credential, by reason", ["reason"])
        self.webhooks = Counter("app_webhook_deliveries", "Webhook deliveries answered, by outcome", ["outcome"])
        self.enqueued = Counter("app_jobs_enqueued", "Jobs queued by requests, by kind", ["kind"])
        self.jobs = Counter("app_jobs_finished", "Job runs, by kind and status after the run", ["kind", "status"])
        self.job_wait = Histogram(
            "app_job_queue_wait_seconds", "Time from due to claimed, per kind", ["kind"], buckets=SLOW_BUCKETS
        )
        self.job_run = Histogram("app_job_run_seconds", "Time a job ran, per kind", ["kind"], buckets=SLOW_BUCKETS)
        self.flows = Counter("app_flow_runs", "Flow runs, by flow and final state", ["flow", "state"])
        self._request_children: dict[tuple[str, str, int], Any] = {}

    def argon2_verified(self, valid: bool, wait_seconds: float) -> None:
        self.argon2.labels("valid" if valid else "invalid").inc()
        self.argon2_wait.observe(wait_seconds)

    def auth_refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def webhook_delivery(self, outcome: str) -> None:
        self.webhooks.labels(outcome).inc()

    def job_enqueued(self, kind: str) -> None:
        self.enqueued.labels(kind).inc()

    def job_finished(self, kind: str, status: str, queued_seconds: float, run_seconds: float) -> None:
        self.jobs.labels(kind, status).inc()
        self.job_wait.labels(kind).observe(queued_seconds)
        self.job_run.labels(kind).observe(run_seconds)

    def flow_finished(self, flow: str, state: str) -> None:
        self.flows.labels(flow, state).inc()

    def observe_request(self, scope: Any, status: int, seconds: float) -> None:
        """Per request: a dict lookup and one histogram observation (the label children are cached
        per method, route and status, all bounded)."""
        key = (scope["method"], scope.get("path_template") or UNMATCHED, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(*key)
        child.observe(seconds)

    def sample_pool(self, pool: Any) -> None:
        """A thread that reads the pool's gauges every SAMPLE_SECONDS (no cost per request)."""

        def sample() -> None:
            while True:
                self.pool_in_use.set(pool.checkedout() if hasattr(pool, "checkedout") else 0)
                # QueuePool's queue: its condition's waiters are the threads blocked in checkout.
                condition = getattr(getattr(pool, "_pool", None), "not_empty", None)
                self.pool_waiting.set(len(getattr(condition, "_waiters", ())))
                time.sleep(SAMPLE_SECONDS)

        threading.Thread(target=sample, name="metrics-pool-sampler", daemon=True).start()


_enabled: PrometheusRecorder | None = None


def enable(settings: Settings) -> PrometheusRecorder:
    """Write this process's samples to its server instance's directory; the recorder is installed
    for every call site. Before any metric exists: prometheus_client picks its storage then."""
    global _enabled  # noqa: PLW0603
    if _enabled is None:  # once per process (its metrics are the process's)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(run_directory(settings))
        from prometheus_client import values  # noqa: PLC0415

        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # even when something imported it before (Prefect does)
        _enabled = PrometheusRecorder()
    metrics.use(_enabled)
    return _enabled


def process_stopped() -> None:
    """This process's gauges leave the sums (its counters stay: they are totals)."""
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(os.getpid(), os.environ["PROMETHEUS_MULTIPROC_DIR"])  # type: ignore[no-untyped-call]


class _SharedPortServer(ThreadingHTTPServer):
    allow_reuse_port = True  # every API process listens; the kernel hands each scrape to one
    daemon_threads = True


def serve(host: str, port: int) -> socketserver.BaseServer:
    """The text format of every process's samples, on host:port, from a thread of this process."""
    from prometheus_client import CollectorRegistry, MetricsHandler, multiprocess  # noqa: PLC0415

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, os.environ["PROMETHEUS_MULTIPROC_DIR"])  # type: ignore[no-untyped-call]
    server = _SharedPortServer((host, port), MetricsHandler.factory(registry))
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
