"""`task bench`: throughput and latency of the real app against a bare baseline, on PostgreSQL.

What it measures, in one run:

1. GET /api/users/me with a Clerk session token (real RS256, verified with the PEM key), on the app
   with observability off (as by default) and on two more copies of it: one with Prometheus metrics
   on (METRICS_ENABLED, its samples in a temporary METRICS_DIR, a free METRICS_PORT), one with
   OpenTelemetry traces on, exported over OTLP/HTTP to a no-op collector in the bench process
   (bench/sink.py); each measured in the same alternating rounds as the baseline and the off app, so
   its ratios to both come from one run (afterwards, the metrics port must count the requests and
   the collector must have received spans);
2. the same with an API key (argon2 defaults; the app remembers a key once verified), then the cost
   attack: a flood of wrong secrets for that key's prefix against a flood without credentials;
3. GET /api/users?limit=50 as an admin (API key), at 1 k and at 100 k users;
4. GET /api/projects?limit=50 with an API key bound to an organization, its user a member there (the
   tenant rule applies), at 1 k and at 100 k projects over 1 000 organizations: the caller's holds
   100 at both sizes (the same full page and count), the others share the rest, so only the table grows;
5. signed `POST /webhooks/clerk` `user.updated` deliveries per second: one per user, each with its
   own svix-id and a real Svix signature; afterwards the `processed` rows must equal the 200s;
6. the API's cold start: `create_app()` in a fresh interpreter (median of 5, its modules compiled
   as in the image), next to `python -c pass`.

How: the database at BENCH_DATABASE_URL is wiped (DROP SCHEMA public CASCADE) and migrated, the
callers' accounts are created, users, organizations and projects are bulk-inserted, each with one
INSERT ... SELECT generate_series. Two servers run side by side, each one uvicorn worker configured
by environment variables: the app as the api image runs it (the Dockerfile's `CMD`, read from it:
the bounded httptools protocol, `ENVIRONMENT=production` and so its JSON access line at INFO) and the
baseline (bench/bare_app.py, plain uvicorn: one sync handler; for a session token the bare limit,
PyJWT's RS256 check then one SELECT through an ORM session; for a key one lookup, then indexed
SELECTs: a list's page and its capped count). Each scenario loads the baseline, then the app: one request to
check it answers 200, 1 s of warm-up, then BENCH_ROUNDS (3) rounds, each BENCH_SECONDS (3) s on the
baseline then on the app (the median round counts) over BENCH_CONNECTIONS (16) keep-alive
connections from wrk (1 thread, `--latency`) or, without wrk, bench/client.py; the webhook
deliveries, each sent once, always come from bench/client.py, which lets every request in flight
finish so the 200s can be counted exactly. With two cores or more the servers run on the first core
and the load generator on the second. Ratios within one run are the figures to compare: absolute
numbers move with the machine. The results overwrite bench/results.md.
"""

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Engine, create_engine

from app.domains.base.actors import Role
from app.infrastructure.config import Settings
from bench.data import (
    TENANT_ORGANIZATION,
    add_bulk_organizations,
    add_bulk_projects,
    add_bulk_users,
    count_processed_events,
    create_account,
    reset_schema,
    signed_deliveries,
)
from bench.load import WRK, LoadResult, load, pinned, run_client
from bench.report import Scenario, Target, cpu_per_request, scenario_line, target_line, write_results
from bench.sink import otlp_sink
from tests.clerk_helpers import ALLOWED_ORIGIN, ISSUER, WEBHOOK_SECRET, SigningKey

ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/tmpl_bench")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
SECONDS = max(1, round(float(os.environ.get("BENCH_SECONDS", "3"))))  # wrk takes whole seconds
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
WARM_UP_SECONDS = 1
WORKER_THREADS = os.environ.get("WORKER_THREADS", "16")
CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPU, LOAD_CPU = (CPUS[0], CPUS[1]) if len(CPUS) >= 2 and (os.cpu_count() or 1) >= 2 else (None, None)
WARM_UP_DELIVERIES, MEASURED_DELIVERIES = 5_000, 25_000
COLD_START_RUNS = 5
BARE = ["bench.bare_app:app", "--no-access-log", "--log-level", "warning"]


def production_command(dockerfile: Path = ROOT / "Dockerfile") -> list[str]:
    """The api image's uvicorn arguments (its exec-form `CMD`), less its host and port."""
    text = dockerfile.read_text().replace("\\\n", " ")
    stage = text.split("AS api", 1)[1].split("\nFROM ", 1)[0]
    found = re.search(r"^CMD (\[.*\])$", stage, re.MULTILINE)
    if found is None:
        raise SystemExit("the Dockerfile's api stage has no exec-form CMD")
    arguments = json.loads(found.group(1))
    if arguments[0] != "uvicorn":
        raise SystemExit(f"the api image does not run uvicorn: {arguments}")
    kept, rest = [], iter(arguments[1:])
    for argument in rest:
        if argument in {"--host", "--port"}:
            next(rest)
        else:
            kept.append(argument)
    return kept


APP = production_command()


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    stderr_path: Path

    def stderr_tail(self, lines: int = 40) -> str:
        text = self.stderr_path.read_text(errors="replace").strip()
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Not inherited from the caller's environment: argon2 keeps its defaults, observability is off
# unless a variant turns it on.
NOT_INHERITED = ("ARGON2_", "OTEL_", "METRICS_", "PROMETHEUS_MULTIPROC_DIR", "APP_METRICS_RUN_DIR")


def server_env(public_pem: str) -> dict[str, str]:
    """The app's settings, from the environment as in production; argon2 keeps its defaults."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(NOT_INHERITED)}
    return {
        **inherited,
        "DATABASE_URL": DATABASE_URL,
        "WORKER_THREADS": WORKER_THREADS,
        "DATABASE_POOL_SIZE": WORKER_THREADS,
        "CLERK_ISSUER": ISSUER,
        "CLERK_JWT_KEY": public_pem,
        "CLERK_AUTHORIZED_PARTIES": ALLOWED_ORIGIN,
        "CLERK_WEBHOOK_SIGNING_SECRET": WEBHOOK_SECRET,
        "ENVIRONMENT": "production",  # its checks pass here; JSON log lines, as in production
        "LOG_LEVEL": "INFO",  # the access log is on, as in production
    }


@contextmanager
def serving(name: str, target: list[str], env: dict[str, str], scratch: Path) -> Iterator[Server]:
    """One uvicorn worker on 127.0.0.1, pinned to the server core; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", *target, "--port", str(port), "--workers", "1"]
    stderr_path = scratch / f"{name}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(pinned(command, SERVER_CPU), env=env, cwd=ROOT, stderr=stderr)
    server = Server(name, port, process, stderr_path)
    try:
        wait_until_listening(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)


def wait_until_listening(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited at startup:\n{server.stderr_tail()}")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{server.name} did not listen within {timeout:.0f} s:\n{server.stderr_tail()}")


def probe(server: Server, path: str, headers: dict[str, str]) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def report_failure(server: Server, path: str, detail: str) -> str:
    """Print what went wrong with the server's stderr; the detail goes to results.md."""
    print(f"  !! {server.name} {path}: {detail}\n  !! {server.name} stderr (tail):")
    print("\n".join(f"  |  {line}" for line in server.stderr_tail().splitlines()))
    return f"{server.name} {path}: {detail}"


def warm_up(server: Server, path: str, headers: dict[str, str]) -> str | None:
    """One request that must answer 200 (it also pays the first argon2), then WARM_UP_SECONDS of load."""
    status, body = probe(server, path, headers)
    if status != 200:
        return report_failure(server, path, f"answered {status}: {body[:500]}")
    load(server.port, path, headers, WARM_UP_SECONDS, CONNECTIONS, LOAD_CPU)
    return None


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): steadier than req/s on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_result(results: list[LoadResult]) -> LoadResult:
    """The round with the median rate (its own p50 and p99): one noisy round does not decide."""
    return sorted(results, key=lambda result: result.rate)[len(results) // 2]


def measured_load(server: Server, path: str, headers: dict[str, str]) -> LoadResult:
    """One round of load, with the server's CPU time per response."""
    cpu_before = process_cpu_seconds(server.process.pid)
    result = load(server.port, path, headers, SECONDS, CONNECTIONS, LOAD_CPU)
    cpu = process_cpu_seconds(server.process.pid) - cpu_before
    return replace(result, cpu_us=cpu * 1e6 / result.requests if result.requests else None)


def refusals(app: Server, path: str, key: str) -> Scenario:
    """The cost attack: wrong secrets for a real key's prefix (its owner's own, or a victim's seen in
    a listing) against the same flood without credentials (the baseline column). Both are refused:
    401, then 429 past the failure limits; the median of ROUNDS alternating rounds of each."""
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    floods = {"wrong secret": {"X-API-Key": wrong}, "no credential": {}}
    rounds: dict[str, list[LoadResult]] = {name: [] for name in floods}
    for name, headers in floods.items():
        status, body = probe(app, path, headers)
        if status not in {401, 429}:
            failure = report_failure(app, path, f"{name} answered {status}: {body[:300]}")
            return Scenario("401s: wrong secret (vs none)", LoadResult(0, 0, 0.0, 0.0, 0.0, failure))
    for _ in range(ROUNDS):
        for name, headers in floods.items():
            rounds[name].append(replace(measured_load(app, path, headers), failure=None))  # all refusals
    scenario = Scenario(
        "401s: wrong secret (vs none)", median_result(rounds["wrong secret"]), median_result(rounds["no credential"])
    )
    print(scenario_line(scenario))
    return scenario


def alternating(servers: list[Server], path: str, headers: dict[str, str]) -> dict[str, LoadResult] | LoadResult:
    """ROUNDS rounds, each every server in turn for SECONDS, so all see the same machine load: each
    server's median round, by name; or the first failure."""
    for server in servers:
        if failure := warm_up(server, path, headers):
            return LoadResult(0, 0, 0.0, 0.0, 0.0, failure)
    rounds: dict[str, list[LoadResult]] = {server.name: [] for server in servers}
    for _ in range(ROUNDS):
        for server in servers:
            result = measured_load(server, path, headers)
            if result.failure:
                return replace(result, failure=report_failure(server, path, result.failure))
            rounds[server.name].append(result)
    return {name: median_result(results) for name, results in rounds.items()}


def compare(name: str, app: Server, bare: Server, path: str, headers: dict[str, str]) -> Scenario:
    """The baseline then the app, in alternating rounds."""
    found = alternating([bare, app], path, headers)
    if isinstance(found, LoadResult):
        return Scenario(name, found, None)
    scenario = Scenario(name, found["app"], found["bare"])
    print(scenario_line(scenario))
    return scenario


# Short enough for the printed column; the no-op exporter is bench/sink.py.
VARIANT_NAMES = {"token_metrics": "metrics on", "token_tracing": "tracing (no-op)"}


def observability_costs(
    bare: Server, app: Server, variants: dict[str, Server], path: str, headers: dict[str, str]
) -> dict[str, Scenario]:
    """The baseline, the app with observability off, then each variant (the same app with metrics or
    traces on), in alternating rounds: each variant's ratio to the off app comes from the same run."""
    name = "/me, Clerk token"
    found = alternating([bare, app, *variants.values()], path, headers)
    if isinstance(found, LoadResult):
        return {key: Scenario(name, found, None) for key in ("token", *variants)}
    scenarios = {"token": Scenario(name, found["app"], found["bare"])}
    for key, server in variants.items():
        scenarios[key] = Scenario(f"{name}, {VARIANT_NAMES[key]}", found[server.name], found["bare"], off=found["app"])
    for scenario in scenarios.values():
        print(scenario_line(scenario))
    return scenarios


def metrics_env(env: dict[str, str], scratch: Path) -> dict[str, str]:
    """Prometheus metrics on (app/infrastructure/prometheus.py), their samples and port the bench's."""
    metrics_dir = scratch / "metrics"
    metrics_dir.mkdir()
    return {**env, "METRICS_ENABLED": "true", "METRICS_DIR": str(metrics_dir), "METRICS_PORT": str(free_port())}


def scraped_requests(env: dict[str, str]) -> int:
    """Requests counted on the metrics port: the proof that the metrics variant measured metrics on."""
    connection = http.client.HTTPConnection("127.0.0.1", int(env["METRICS_PORT"]), timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    except OSError:
        return 0
    finally:
        connection.close()
    counts = re.findall(r"^app_http_request_duration_seconds_count\{[^}]*\} ([\d.e+]+)$", text, re.MULTILINE)
    return round(sum(float(count) for count in counts))


def observability_check(requests_counted: int, spans: int, exports: int) -> str:
    check = f"metrics on: {requests_counted} requests counted on its metrics port; "
    check += f"tracing on: {spans} spans in {exports} exports received by the no-op collector"
    if not requests_counted or not spans:
        check += ": NOT ON"
    return check


def webhook_deliveries(app: Server, engine: Engine) -> tuple[Scenario, str]:
    """Each delivery sent once (warm-up ones first); then the new `processed` rows must equal the 200s."""
    path, name = "/webhooks/clerk", "POST /webhooks/clerk user.updated"
    deliveries = signed_deliveries(1, WARM_UP_DELIVERIES + MEASURED_DELIVERIES, run_id=str(time.time_ns()))
    warm_up = run_client(app.port, deliveries[:WARM_UP_DELIVERIES], WARM_UP_SECONDS, CONNECTIONS, LOAD_CPU, cycle=False)
    if warm_up.failure:
        return Scenario(name, replace(warm_up, failure=report_failure(app, path, warm_up.failure)), unit="events/s"), ""
    before = count_processed_events(engine)
    result = run_client(app.port, deliveries[WARM_UP_DELIVERIES:], SECONDS, CONNECTIONS, LOAD_CPU, cycle=False)
    processed = count_processed_events(engine) - before
    lost = processed != result.ok
    check = f"{result.ok} responses 200, {processed} webhook_events rows 'processed': "
    check += "MISMATCH" if lost else "none lost"
    print(scenario_line(Scenario(name, result, unit="events/s")))
    print(f"  {check}")
    if result.failure or lost:
        result = replace(result, failure=report_failure(app, path, result.failure or check))
    return Scenario(name, result, unit="events/s"), check


def median_seconds(code: str, env: dict[str, str]) -> float:
    """Wall time of `python -c code` in a fresh interpreter, median of COLD_START_RUNS."""
    times = []
    for _ in range(COLD_START_RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


def versus_off(variant: Scenario) -> str:
    cpu = f"CPU/request {cpu_per_request(variant.app)} vs {cpu_per_request(variant.off)}"
    return f"{variant.ratio_to_off or 0.0:.2f}x ({cpu})"


def targets(scenarios: dict[str, Scenario], webhook: Scenario, cold_start: float, bare_python: float) -> list[Target]:
    token, key = scenarios["token"], scenarios["key"]
    small, large = scenarios["list_1k"], scenarios["list_100k"]
    token_ratio = token.ratio or 0.0
    bare_p99 = token.baseline.p99_ms if token.baseline is not None else 0.0
    key_ratio = ratio(key.app.rate, token.app.rate)
    growth = ratio(large.app.p50_ms, small.app.p50_ms) if small.app.p50_ms else float("inf")
    few, many = scenarios["projects_1k"], scenarios["projects_100k"]
    tenant_growth = ratio(many.app.p50_ms, few.app.p50_ms) if few.app.p50_ms else float("inf")
    refused, valid = scenarios["refusals"].app.cpu_us or float("inf"), key.app.cpu_us or 0.0
    metered, traced = scenarios["token_metrics"], scenarios["token_tracing"]
    metrics_cost = metered.ratio_to_off or 0.0
    return [
        Target("Clerk-token /me vs bare", ">= 0.85x", f"{token_ratio:.2f}x", token_ratio >= 0.85),
        Target(
            "Clerk-token /me, metrics on vs off",
            ">= 0.95x",
            versus_off(metered),
            metrics_cost >= 0.95,
        ),
        Target(
            "Clerk-token /me, tracing on (no-op exporter) vs off",
            "— (quoted)",
            versus_off(traced),
            None,
        ),
        Target(
            "Clerk-token /me p99 vs bare's",
            "<= 1.5x",
            f"{token.app.p99_ms:.1f} vs {bare_p99:.1f} ms",
            token.app.p99_ms <= 1.5 * bare_p99,
        ),
        Target("API-key /me vs Clerk-token /me (app)", ">= 0.90x", f"{key_ratio:.2f}x", key_ratio >= 0.90),
        Target(
            "CPU of a wrong-secret refusal vs an API-key /me (app)",
            "<= 1x (a member's own requests cost that)",
            f"{refused:.0f} µs vs {valid:.0f} µs",
            refused <= valid,
        ),
        Target("list p50 at 100k / at 1k (app)", "<= 2x", f"{growth:.2f}x", growth <= 2),
        Target("projects list p50 at 100k / at 1k (app)", "<= 2x", f"{tenant_growth:.2f}x", tenant_growth <= 2),
        Target("webhook deliveries", ">= 300 events/s", f"{webhook.app.rate:.0f} events/s", webhook.app.rate >= 300),
        Target(
            "API cold start (create_app)",
            "<= 1.0 s",
            f"{cold_start:.2f} s (python -c pass: {bare_python:.2f} s)",
            cold_start <= 1.0,
        ),
    ]


def run_scenarios(
    env: dict[str, str], engine: Engine, token: str, member_key: str, admin_key: str, tenant_key: str
) -> tuple:
    me, users_page, projects_page = "/api/users/me", "/api/users?limit=50", "/api/projects?limit=50"
    with (
        tempfile.TemporaryDirectory() as scratch,
        serving("bare", BARE, env, Path(scratch)) as bare,
        serving("app", APP, env, Path(scratch)) as app,
    ):
        metered_env = metrics_env(env, Path(scratch))
        with (
            otlp_sink(LOAD_CPU) as sink,
            serving("app-metrics", APP, metered_env, Path(scratch)) as metered,
            serving("app-tracing", APP, {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}, Path(scratch)) as traced,
        ):
            variants = {"token_metrics": metered, "token_tracing": traced}
            found = observability_costs(bare, app, variants, me, {"Authorization": f"Bearer {token}"})
            requests_counted = scraped_requests(metered_env)
        observed = observability_check(requests_counted, sink.spans(), len(sink.exports))
        print(f"  {observed}")
        found["key"] = compare("/me, API key", app, bare, me, {"X-API-Key": member_key})
        print(f"  API key / Clerk token (app): {ratio(found['key'].app.rate, found['token'].app.rate):.2f}x")
        found["refusals"] = refusals(app, me, member_key)
        found["list_1k"] = compare("list 50, 1k users", app, bare, users_page, {"X-API-Key": admin_key})
        add_bulk_users(engine, 100_000)
        found["list_100k"] = compare("list 50, 100k users", app, bare, users_page, {"X-API-Key": admin_key})
        growth = ratio(found["list_100k"].app.p50_ms, found["list_1k"].app.p50_ms)
        print(f"  list p50 100k / 1k (app): {growth:.2f}x")
        tenant = {"X-API-Key": tenant_key}
        found["projects_1k"] = compare("list 50, 1k projects (tenant)", app, bare, projects_page, tenant)
        add_bulk_projects(engine, 100_000)
        found["projects_100k"] = compare("list 50, 100k projects (tenant)", app, bare, projects_page, tenant)
        growth = ratio(found["projects_100k"].app.p50_ms, found["projects_1k"].app.p50_ms)
        print(f"  projects list p50 100k / 1k (app): {growth:.2f}x")
        webhook, check = webhook_deliveries(app, engine)
    return found, webhook, check, observed


def main() -> None:
    signing_key = SigningKey("ins_bench")  # the tests' real RS256 session tokens
    env = server_env(signing_key.public_pem)
    engine = create_engine(DATABASE_URL)
    loader = f"wrk -t1 (pinned to CPU {LOAD_CPU})" if WRK else f"bench.client (CPU {LOAD_CPU})"
    print(f"{DATABASE_URL.split('@')[-1]}: {CONNECTIONS} connections, {SECONDS} s (+{WARM_UP_SECONDS} s warm-up)")
    print(f"servers on CPU {SERVER_CPU}, load from {loader}, WORKER_THREADS={WORKER_THREADS}")

    started = time.perf_counter()
    reset_schema(engine, env)
    settings = Settings(database_url=DATABASE_URL, log_level="WARNING")
    member = create_account(settings, "member", Role.MEMBER)
    admin = create_account(settings, "admin", Role.ADMIN)
    add_bulk_organizations(engine)
    tenant = create_account(settings, "tenant", Role.MEMBER, organization=TENANT_ORGANIZATION)
    add_bulk_users(engine, 1_000)
    add_bulk_projects(engine, 1_000)
    print(f"schema reset, migrated, 1k users, 1k organizations, 1k projects in {time.perf_counter() - started:.1f} s\n")

    token = signing_key.mint(sub=member.clerk_id, exp=int(time.time()) + 3600)
    scenarios, webhook, check, observed = run_scenarios(
        env, engine, token, member.api_key, admin.api_key, tenant.api_key
    )
    engine.dispose()

    # As the api image does (`python -m compileall app`): with PYTHONDONTWRITEBYTECODE set, as on
    # these machines, every start would compile the app's modules again.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "app"], cwd=ROOT, check=True)
    cold_start = median_seconds("from app.api.main import create_app; create_app()", env)
    bare_python = median_seconds("pass", env)
    print(f"{'API cold start (create_app)':<34} {cold_start:8.2f} s      median of {COLD_START_RUNS} runs")
    print(f"{'python -c pass':<34} {bare_python:8.2f} s      for reference\n")

    goals = targets(scenarios, webhook, cold_start, bare_python)
    for goal in goals:
        print(target_line(goal))
    all_scenarios = [*scenarios.values(), webhook]
    failures = [scenario.app.failure for scenario in all_scenarios if scenario.app.failure]
    failures += [s.baseline.failure for s in all_scenarios if s.baseline is not None and s.baseline.failure]
    failures += [observed] if observed.endswith("NOT ON") else []
    notes = [
        f"webhook check: {check}",
        f"observability check: {observed}",
        f"{CONNECTIONS} connections; median of {ROUNDS} alternating rounds of {SECONDS} s after 1 s of warm-up; "
        f"load: {loader}",
        *(f"FAILED: {failure}" for failure in failures),
    ]
    write_results(all_scenarios, goals, notes)
    print(f"\nwritten to {Path('bench/results.md')} in {time.perf_counter() - started:.0f} s")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
