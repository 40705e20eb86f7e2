"""`python -m bench.jobs` (`task bench-jobs`): background jobs on PostgreSQL and a real Prefect server.

What it measures, with worker processes that run exactly what `task worker` runs for jobs
(bench/job_worker.py: `app.workers.main.dispatching()`, a `noop` kind registered):

1. pickup latency with an idle worker: BENCH_LATENCY_JOBS (100) jobs submitted one at a time, each
   after the previous one finished and a random pause (0.1-0.6 s, so the submissions do not keep
   step with the dispatcher's polls); latency is a job's `started_at` (set by the claim) minus the
   time its submitting transaction committed;
2. throughput: BENCH_JOBS (1000) `noop` jobs committed in one transaction while one, then two worker
   processes wait; jobs/s is the jobs over the time from that commit to the last `finished_at`.

How: BENCH_DATABASE_URL is wiped and migrated as for `task bench`; a Prefect server is started on a
free loopback port with a PREFECT_HOME of its own (or BENCH_PREFECT_API_URL is used). Workers take
their settings from the environment (JOB_CONCURRENCY, JOB_POLL_SECONDS... pass through; defaults
otherwise). Each worker times its phases (the task run as the dispatcher calls it, our `run_job`
inside it, each claim) and the bench reports the medians of the one-worker drain: what Prefect's
engine adds to a job is the task run minus `run_job`. With `py-spy` on PATH, one more one-worker
drain (300 jobs, not counted: sampling slows it) is sampled and the samples grouped by where they
fall. Nothing is pinned to a core: on a shared machine, compare runs made one after the other. The
results overwrite bench/jobs-results.md.
"""

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, create_engine, text

from app.bootstrap import Container, bootstrap
from app.domains.base.actors import Actor, AuthMethod, Role
from app.domains.base.permissions import permissions
from app.domains.jobs.service import JobService
from app.domains.users.schemas import UserCreate
from app.domains.users.service import UserService
from app.infrastructure.config import Settings
from bench.data import reset_schema
from bench.job_worker import NOOP
from bench.run import DATABASE_URL, free_port, process_cpu_seconds
from tests.helpers import settings_for

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "jobs-results.md"
LATENCY_JOBS = int(os.environ.get("BENCH_LATENCY_JOBS", "100"))
JOBS = int(os.environ.get("BENCH_JOBS", "1000"))
PROFILED_JOBS = 300
TARGET_PICKUP_P50 = 1.0  # seconds
TARGET_RATE_PER_WORKER = 20.0  # no-op jobs/s per worker process


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    worker_id: str
    timings_path: Path
    stdout: IO[bytes]

    def timings(self) -> dict[str, list[list[Any]]]:
        return json.loads(self.timings_path.read_text())


def wait_for_http(url: str, timeout: float) -> None:
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def prefect_server(scratch: Path) -> Iterator[tuple[str, int | None]]:
    """A Prefect server for the bench (its own PREFECT_HOME: a fresh SQLite database), or
    BENCH_PREFECT_API_URL: its URL, and its process id when the bench started it."""
    if url := os.environ.get("BENCH_PREFECT_API_URL"):
        yield url, None
        return
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(scratch / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    with (scratch / "prefect-server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/api"
        wait_for_http(f"{url}/health", timeout=180)  # a first start creates its database
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def worker_env(prefect_url: str, scratch: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "PREFECT_API_URL": prefect_url,
        "PREFECT_HOME": str(scratch / "prefect-client"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }


@contextmanager
def worker(name: str, env: dict[str, str], scratch: Path) -> Iterator[Worker]:
    """A worker process, ready (it printed its id); SIGTERM on exit, then its timings are there."""
    timings = scratch / f"{name}.json"
    with ExitStack() as stack:
        stdout = stack.enter_context((scratch / f"{name}.out").open("w+b"))
        stderr = stack.enter_context((scratch / f"{name}.err").open("wb"))
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.job_worker"],
            env={**env, "BENCH_TIMINGS": str(timings)},
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )
        deadline = time.monotonic() + 120
        while not (lines := (scratch / f"{name}.out").read_text().split()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {name} did not start:\n{(scratch / f'{name}.err').read_text()[-3000:]}")
            time.sleep(0.1)
        try:
            yield Worker(process, lines[1], timings, stdout)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)


def submitter(settings: Settings) -> tuple[Container, Actor]:
    """The bench's own container and a user to submit jobs as (through JobService, as a route does)."""
    container = bootstrap(settings)
    with container.unit_of_work(Actor.system()) as uow:
        user = uow.service(UserService).create_user(UserCreate(email="jobs@bench.example.com", role=Role.MEMBER))
    return container, Actor(user.id, Role.MEMBER, permissions.all(), AuthMethod.API_KEY)


def submit(container: Container, actor: Actor, count: int) -> tuple[list[str], float]:
    """`count` jobs in one transaction: their ids and the time (epoch) just after the commit."""
    with container.unit_of_work(actor) as uow:
        ids = [str(uow.service(JobService).enqueue(NOOP, {}).id) for _ in range(count)]
    return ids, time.time()


def wait_finished(engine: Engine, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    query = text("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND id = ANY(CAST(:ids AS uuid[]))")
    while True:
        with engine.connect() as connection:
            if connection.execute(query, {"ids": ids}).scalar_one() == len(ids):
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(ids)} jobs not all succeeded within {timeout:.0f} s")
        time.sleep(0.02 if len(ids) == 1 else 0.2)


def job_times(engine: Engine, ids: list[str]) -> list[tuple[float, float, int]]:
    """(started_at, finished_at, attempts) of each job, epoch seconds."""
    query = text(
        "SELECT extract(epoch FROM started_at), extract(epoch FROM finished_at), attempts"
        " FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"
    )
    with engine.connect() as connection:
        return [(float(s), float(f), a) for s, f, a in connection.execute(query, {"ids": ids})]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextmanager
def sampled(pid: int, path: Path) -> Iterator[bool]:
    """py-spy samples the process while the block runs (if py-spy is installed); yields whether."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        yield False
        return
    profiler = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)  # attached
        yield True
    finally:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        profiler.wait(timeout=60)


# Where a sample of a job thread falls: the first place whose frame is on its stack. Samples outside
# a task run or a claim (idle threads, Prefect's background services) are left out.
PLACES = [
    ("run_job (app/domains/jobs/runner.py", "our run_job: the handler's and the outcome's transactions"),
    ("SyncPrefectClient.__init__", "Prefect: a new API client for the run (an SSL context)"),
    ("read_server_default_result_storage", "Prefect: asking the server for its default result storage"),
    ("Task.with_options", "Prefect: with_options (a new Task)"),
    ("SyncTaskRunEngine.initialize_run", "Prefect: creating the task run (contexts, the Pending event)"),
    ("SyncTaskRunEngine.begin_run", "Prefect: the Running state"),
    ("SyncTaskRunEngine.transaction_context", "Prefect: the task's transaction"),
    ("SyncTaskRunEngine.handle_success", "Prefect: the Completed state"),
    ("Dispatcher.run (app/workers/jobs.py", "Prefect: the rest of the engine"),
    ("Dispatcher.claim (app/workers/jobs.py", "our claim (one transaction per claim)"),
]


def places(profile: Path) -> list[tuple[str, float]]:
    """Share of the job threads' sampled time (task runs and claims) in each place."""
    counts: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if place := next((name for frame, name in PLACES if frame in stack), None):
            counts[place] += int(number)
    total = sum(counts.values()) or 1
    return [(place, count / total) for place, count in counts.most_common()]


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (Linux /proc/stat)."""
    user, nice, system, idle, iowait, *rest = (
        int(n) for n in Path("/proc/stat").read_text().split("\n")[0].split()[1:]
    )
    total = user + nice + system + idle + iowait + sum(rest[:3])  # irq, softirq, steal
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle - iowait) / tick, total / tick


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the Prefect server runs its services beside it)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, ValueError):
                continue
    total = 0.0
    for each in (pid, *children):
        try:
            total += process_cpu_seconds(each)
        except OSError:
            continue
    return total


@dataclass
class Drain:
    ids: list[str]
    seconds: float  # from the commit of the jobs to the last finished_at
    cpu_ms_per_job: float  # the workers' CPU time (user + system) over the jobs
    prefect_cores: float  # the Prefect server's CPU seconds per second of the drain (0: not started here)
    machine_busy_cores: float  # every process's CPU over the drain: how much of the machine was in use
    attempts_over_one: int

    @property
    def rate(self) -> float:
        return len(self.ids) / self.seconds


def drain(
    engine: Engine, container: Container, actor: Actor, running: list[Worker], server: int | None, jobs: int = JOBS
) -> Drain:
    def cpu() -> tuple[float, float, tuple[float, float]]:
        workers = sum(process_cpu_seconds(w.process.pid) for w in running)
        return workers, tree_cpu_seconds(server) if server else 0.0, machine_cpu_seconds()

    before = cpu()
    ids, committed = submit(container, actor, jobs)
    wait_finished(engine, ids, timeout=jobs * 2)
    after = cpu()
    times = job_times(engine, ids)
    seconds = max(finished for _, finished, _ in times) - committed
    (busy_before, total_before), (busy_after, total_after) = before[2], after[2]
    busy_cores = (busy_after - busy_before) / (total_after - total_before) * (os.cpu_count() or 1)
    return Drain(
        ids,
        seconds,
        (after[0] - before[0]) * 1000 / len(ids),
        (after[1] - before[1]) / seconds,
        busy_cores,
        sum(attempts > 1 for *_, attempts in times),
    )


def main() -> None:
    started = time.perf_counter()
    engine = create_engine(DATABASE_URL)
    reset_schema(engine, {**os.environ, "DATABASE_URL": DATABASE_URL})
    container, actor = submitter(settings_for(DATABASE_URL))
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder, ExitStack() as stack:
        scratch = Path(folder)
        prefect_url, server = stack.enter_context(prefect_server(scratch))
        env = worker_env(prefect_url, scratch)
        print(f"Prefect API at {prefect_url}")
        first = stack.enter_context(worker("w1", env, scratch))
        warm_up, _ = submit(container, actor, 5)
        wait_finished(engine, warm_up, timeout=120)
        pickup, done = latencies(engine, container, actor)
        print(f"pickup p50 {median(pickup) * 1000:.0f} ms, p99 {percentile(pickup, 0.99) * 1000:.0f} ms")

        one = drain(engine, container, actor, [first], server)
        print(f"1 worker: {len(one.ids)} jobs in {one.seconds:.1f} s: {one.rate:.1f} jobs/s")
        profile = Path(os.environ.get("BENCH_PROFILE") or scratch / "w1.profile")
        with sampled(first.process.pid, profile) as profiled:  # a drain of its own: sampling slows it
            drain(engine, container, actor, [first], server, PROFILED_JOBS)
        second = stack.enter_context(worker("w2", env, scratch))
        two = drain(engine, container, actor, [first, second], server)
        print(f"2 workers: {len(two.ids)} jobs in {two.seconds:.1f} s: {two.rate:.1f} jobs/s")
        stack.close()  # the workers stop (and write their timings), then the Prefect server

        phases = phase_medians(first.timings(), set(one.ids))
        shares = [ran_by(w.timings(), set(two.ids)) for w in (first, second)]
        notes.append(f"2-worker drain: the workers ran {shares[0]} and {shares[1]} of its jobs")
        where = places(profile) if profiled and profile.exists() else []
    container.dispose()
    if not profiled:
        notes.append("py-spy is not on PATH: no sampled profile (`uv tool install py-spy` adds it)")
    write_results(pickup, done, one, two, phases, where, notes)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


def latencies(engine: Engine, container: Container, actor: Actor) -> tuple[list[float], list[float]]:
    """Jobs submitted one at a time to an idle worker: seconds from each commit to its started_at,
    and to its finished_at."""
    commits = {}
    for _ in range(LATENCY_JOBS):
        time.sleep(random.uniform(0.1, 0.6))  # noqa: S311 (not keeping step with the polls)
        (job_id,), committed = submit(container, actor, 1)
        commits[job_id] = committed
        wait_finished(engine, [job_id], timeout=60)
    times = {job_id: job_times(engine, [job_id])[0] for job_id in commits}
    pickup = [times[job_id][0] - committed for job_id, committed in commits.items()]
    done = [times[job_id][1] - committed for job_id, committed in commits.items()]
    return pickup, done


def ran_by(timings: dict[str, list[list[Any]]], ids: set[str]) -> int:
    return sum(1 for job_id, _ in timings["run"] if job_id in ids)


def phase_medians(timings: dict[str, list[list[Any]]], ids: set[str]) -> dict[str, float]:
    """Medians (ms) of each phase over the jobs of the one-worker drain; claims over the worker's life."""
    run = [seconds for job_id, seconds in timings["run"] if job_id in ids]
    run_job = [seconds for job_id, seconds in timings["run_job"] if job_id in ids]
    claims = [seconds / count for count, seconds in timings["claim"] if count]
    return {
        "task run, as the dispatcher calls it (Dispatcher.run)": median(run) * 1000,
        "our run_job inside it (handler + outcome, 2 transactions)": median(run_job) * 1000,
        "Prefect's engine around run_job (the difference)": (median(run) - median(run_job)) * 1000,
        "a claim, per job it claimed": median(claims) * 1000,
    }


def write_results(
    pickup: list[float],
    done: list[float],
    one: Drain,
    two: Drain,
    phases: dict[str, float],
    where: list[tuple[str, float]],
    notes: list[str],
) -> None:
    knobs = ", ".join(f"{k}={os.environ.get(k, 'default')}" for k in ("JOB_CONCURRENCY", "JOB_POLL_SECONDS"))
    pickup_p50, per_worker = median(pickup), min(one.rate, two.rate / 2)
    lines = [
        "# `python -m bench.jobs` results",
        "",
        "Written by `python -m bench.jobs` (overwritten on every run); see the docstring of bench/jobs.py.",
        "",
        "| date | cores | python | prefect | sqlalchemy | worker settings |",
        "|---|---|---|---|---|---|",
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M UTC} | {os.cpu_count()} | {sys.version.split()[0]} "
        f"| {version('prefect')} | {version('sqlalchemy')} | {knobs} |",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| pickup latency p50 (commit -> started_at), idle worker, {len(pickup)} jobs | {pickup_p50 * 1000:.0f} ms |",
        f"| pickup latency p99 | {percentile(pickup, 0.99) * 1000:.0f} ms |",
        f"| commit -> finished_at p50 / p99 | {median(done) * 1000:.0f} / {percentile(done, 0.99) * 1000:.0f} ms |",
        f"| 1 worker: {len(one.ids)} no-op jobs, commit to last finished "
        f"| {one.seconds:.1f} s: {one.rate:.1f} jobs/s |",
        f"| 2 workers: {len(two.ids)} no-op jobs, commit to last finished | {two.seconds:.1f} s: {two.rate:.1f} jobs/s "
        f"({two.rate / 2:.1f} per worker) |",
        f"| workers' CPU per job, 1 worker / 2 workers | {one.cpu_ms_per_job:.1f} / {two.cpu_ms_per_job:.1f} ms |",
        f"| Prefect server's CPU during the drain (cores), 1 worker / 2 workers | {one.prefect_cores:.2f} "
        f"/ {two.prefect_cores:.2f} |",
        f"| machine's cores busy during the drain (all processes, of {os.cpu_count()}), 1 worker / 2 workers "
        f"| {one.machine_busy_cores:.2f} / {two.machine_busy_cores:.2f} |",
        f"| jobs claimed more than once (attempts > 1) | {one.attempts_over_one + two.attempts_over_one} |",
        "",
        "| phase (median over the 1-worker drain's jobs) | ms |",
        "|---|---:|",
        *(f"| {name} | {value:.1f} |" for name, value in phases.items()),
    ]
    if where:
        lines += [
            "",
            "| where a job's time goes in the worker (py-spy: task runs and claims, 1 worker, 300 more jobs) | share |",
        ]
        lines += ["|---|---:|", *(f"| {place} | {fraction * 100:.0f} % |" for place, fraction in where)]
    lines += [
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
        f"| pickup p50 | <= {TARGET_PICKUP_P50:.0f} s | {pickup_p50 * 1000:.0f} ms "
        f"| {'yes' if pickup_p50 <= TARGET_PICKUP_P50 else '**no**'} |",
        f"| no-op jobs/s per worker process | >= {TARGET_RATE_PER_WORKER:.0f} | {per_worker:.1f} "
        f"| {'yes' if per_worker >= TARGET_RATE_PER_WORKER else '**no**'} |",
    ]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
