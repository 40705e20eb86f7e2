"""The flow registry is the one place a flow is declared: what `serve` deploys, prefect.yaml,
README's flow table, FLOW_SCHEDULES and Prefect's defaults all follow from it (or are checked
against it here)."""

import importlib
import itertools
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cronsim import CronSim
from prefect import flow
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from pydantic import ValidationError

from app.infrastructure.config import PROJECT_ROOT, Settings
from app.workers import HEARTBEAT_SECONDS, flow_files
from app.workers.flows import FLOWS
from app.workers.main import deployments
from app.workers.policy import JOB_TASK, TASK_RETRIES, TASK_TIMEOUT_SECONDS, retry_transient
from app.workers.registry import FlowRegistry, RegisteredFlow
from tests.helpers import settings_for
from tests.workers.conftest import worker_tasks


@flow(name="sample-flow")
def sample_flow() -> int:
    return 1


@flow(name="other-flow")
def other_flow() -> int:
    return 2


def registry(**fields: object) -> FlowRegistry:
    entry = {"cron": "0 3 * * *", "summary": "a sample", **fields}
    return FlowRegistry(RegisteredFlow(sample_flow, **entry), RegisteredFlow(other_flow, None, "on demand only"))


# -- the registry ----------------------------------------------------------------------------------


def test_every_entry_is_named_as_its_flow_and_its_entrypoint_leads_back_to_it() -> None:
    assert len(FLOWS) >= 3
    for name, entry in FLOWS.items():
        assert name == entry.flow.name == entry.name
        path, function = entry.entrypoint.split(":")
        assert (PROJECT_ROOT / path).is_file(), entry.entrypoint
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, function) is entry.flow


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"cron": "0 3 * *"}, "'0 3 * *' is not a cron expression"),
        ({"cron": "61 * * * *"}, "is not a cron expression"),
        ({"summary": " "}, "the summary must be one non-empty line"),
        ({"summary": "two\nlines"}, "the summary must be one non-empty line"),
        ({"concurrency_limit": 0}, "concurrency_limit must be at least 1"),
    ],
)
def test_an_entry_that_would_break_a_file_is_refused(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=rf"flow 'sample-flow': .*{re.escape(problem)}"):
        registry(**fields)


def test_a_flow_is_registered_once_under_a_name_that_fits_commands_and_settings() -> None:
    with pytest.raises(ValueError, match="flow 'sample-flow': registered twice"):
        FlowRegistry(RegisteredFlow(sample_flow, None, "a"), RegisteredFlow(sample_flow, None, "b"))

    @flow(name="Sample Flow")
    def badly_named() -> None: ...

    with pytest.raises(ValueError, match="lower case with dashes"):
        FlowRegistry(RegisteredFlow(badly_named, None, "a"))


# -- schedules: the registry's defaults, FLOW_SCHEDULES's overrides ------------------------------------


def test_schedules_are_the_defaults_unless_flow_schedules_names_the_flow() -> None:
    flows = registry()
    assert flows.schedules({}) == {"sample-flow": "0 3 * * *", "other-flow": None}
    assert flows.schedules({"sample-flow": "off", "other-flow": "*/5 * * * *"}) == {
        "sample-flow": None,
        "other-flow": "*/5 * * * *",
    }


def test_flow_schedules_naming_no_flow_or_holding_a_bad_cron_is_refused_whole() -> None:
    with pytest.raises(ValueError, match=r"FLOW_SCHEDULES: ") as refused:
        registry().schedules({"sample-flw": "0 4 * * *", "other-flow": "every day"})
    assert str(refused.value) == (
        "FLOW_SCHEDULES: 'sample-flw' is no registered flow; other-flow: 'every day' is not a cron expression "
        "(registered flows: sample-flow, other-flow)"
    )


def test_flow_schedules_is_read_as_name_cron_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_SCHEDULES", " maintenance = 0 3,15 * * 1-5 ;user-report=off; ")
    assert Settings(_env_file=None).flow_schedules == {"maintenance": "0 3,15 * * 1-5", "user-report": "off"}
    monkeypatch.setenv("FLOW_SCHEDULES", "")
    assert Settings(_env_file=None).flow_schedules == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("maintenance", "expected name=cron pairs separated by ';', got 'maintenance'"),
        ("maintenance=", "expected name=cron pairs"),
        ("=0 3 * * *", "expected name=cron pairs"),
        ("maintenance=0 3 * * *; maintenance=off", "'maintenance' is given twice"),
    ],
)
def test_a_malformed_flow_schedules_is_refused(monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    monkeypatch.setenv("FLOW_SCHEDULES", value)
    with pytest.raises(ValidationError, match=re.escape(problem)):
        Settings(_env_file=None)


def test_serve_deploys_every_registered_flow_on_its_schedule_in_utc_as_served() -> None:
    served = {deployment.flow_name: deployment for deployment in deployments(settings_for("sqlite://"))}
    assert list(served) == list(FLOWS)
    for name, deployment in served.items():
        assert deployment.name == "served"  # <flow>/served: not the pool's <flow>/pool
        assert deployment.entrypoint == FLOWS[name].entrypoint
        crons = [(schedule.schedule.cron, schedule.schedule.timezone) for schedule in deployment.schedules]
        assert crons == ([(FLOWS[name].cron, "UTC")] if FLOWS[name].cron else [])  # None: on demand only
        assert deployment.concurrency_limit == FLOWS[name].concurrency_limit
        assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW


def test_serve_applies_flow_schedules_and_refuses_a_bad_one_naming_the_setting() -> None:
    first, *others = FLOWS
    moved = deployments(settings_for("sqlite://", flow_schedules={first: "17 4 * * *", others[0]: "off"}))
    schedules = {deployment.flow_name: [s.schedule.cron for s in deployment.schedules] for deployment in moved}
    assert schedules[first] == ["17 4 * * *"]
    assert schedules[others[0]] == []
    with pytest.raises(SystemExit, match=r"^invalid settings: FLOW_SCHEDULES: 'nope' is no registered flow"):
        deployments(settings_for("sqlite://", flow_schedules={"nope": "0 1 * * *"}))


# -- how runs behave: every task and flow under the policy (app/workers/policy.py) -----------------


def test_every_task_retries_transient_errors_only_and_has_a_timeout() -> None:
    tasks = worker_tasks()
    assert len(tasks) >= 8
    for task in tasks:
        if task.name == JOB_TASK:  # retried and bounded by its job row instead (policy.JOB_TASK_POLICY)
            assert (task.cache_policy, task.retries) == (NO_CACHE, 0)
            continue
        policy = (task.cache_policy, task.retries, task.retry_condition_fn, task.timeout_seconds)
        assert policy == (NO_CACHE, TASK_RETRIES, retry_transient, TASK_TIMEOUT_SECONDS), (
            f"task {task.name}: decorate it with @task(**TASK_POLICY)"
        )
        assert task.retry_delay_seconds == [10, 20, 40]


def test_every_flow_has_a_timeout_that_ends_it_before_its_next_scheduled_run() -> None:
    for name, entry in FLOWS.items():
        timeout = entry.flow.timeout_seconds
        assert timeout, f"flow {name}: give its @flow a timeout_seconds"
        if entry.cron:
            times = CronSim(entry.cron, datetime(2026, 1, 1, tzinfo=UTC))
            starts = [next(times) for _ in range(100)]
            interval = min((later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts))
            assert timeout < interval, f"flow {name}: a run could still be going at the next start"


# -- prefect.yaml and README's table ---------------------------------------------------------------


def test_prefect_yaml_deploys_every_registered_flow_as_the_registry_says() -> None:
    """Read as Prefect reads it, independently of the code that writes it."""
    document = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    declared = {
        deployment["entrypoint"]: (
            deployment["name"],
            deployment["work_pool"]["name"],
            deployment["concurrency_limit"],
            [(schedule["cron"], schedule["timezone"]) for schedule in deployment["schedules"]],
            deployment["work_pool"]["job_variables"],
        )
        for deployment in document["deployments"]
    }
    assert declared == {
        entry.entrypoint: (
            "pool",
            "app-flows",
            {"limit": entry.concurrency_limit, "collision_strategy": "CANCEL_NEW"},
            [(entry.cron, "UTC")] if entry.cron else [],
            {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}},  # what crash detection expects
        )
        for entry in FLOWS.values()
    }
    assert document["build"] == [{"app.workers.crash_detection.ensure_crash_detection": {}}]
    assert document["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $APP_DIR }}"}}]


def test_readme_lists_every_registered_flow_with_its_default_schedule() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme.split(flow_files.TABLE_START)[1].split(flow_files.TABLE_END)[0]
    rows = [line.split(" | ") for line in table.strip().splitlines()[2:]]
    assert {row[0].strip("| `"): row[1] for row in rows} == {
        name: f"`{entry.cron}`" if entry.cron else "on demand" for name, entry in FLOWS.items()
    }


def test_prefect_yaml_and_readme_are_as_sync_flows_writes_them() -> None:
    assert flow_files.stale(FLOWS) == [], "out of date with the flow registry: run `uv run task sync-flows`"


def test_sync_flows_rewrites_only_what_is_stale_and_check_names_it(tmp_path: Path) -> None:
    readme = f"# Title\n\n{flow_files.TABLE_START}\n| old |\n{flow_files.TABLE_END}\n\nafter\n"
    (tmp_path / "README.md").write_text(readme)
    flows = registry(summary="pipes | stay in their cell")
    assert flow_files.stale(flows, tmp_path) == [tmp_path / "prefect.yaml", tmp_path / "README.md"]

    for path, text in flow_files.expected(flows, tmp_path).items():
        path.write_text(text)
    assert flow_files.stale(flows, tmp_path) == []
    assert (tmp_path / "README.md").read_text() == (
        f"# Title\n\n{flow_files.TABLE_START}\n"
        "| flow | default schedule (UTC) | what it does |\n|---|---|---|\n"
        "| `sample-flow` | `0 3 * * *` | pipes \\| stay in their cell |\n"
        "| `other-flow` | on demand | on demand only |\n"
        f"{flow_files.TABLE_END}\n\nafter\n"
    )
    document = yaml.safe_load((tmp_path / "prefect.yaml").read_text())
    assert [(d["entrypoint"].split(":")[1], d["schedules"]) for d in document["deployments"]] == [
        ("sample_flow", [{"cron": "0 3 * * *", "timezone": "UTC"}]),
        ("other_flow", []),
    ]


def test_a_readme_without_the_markers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# no table here\n")
    with pytest.raises(ValueError, match=r"README\.md lacks the flow table's markers"):
        flow_files.expected(FLOWS, tmp_path)


def test_the_check_fails_naming_the_stale_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(f"{flow_files.TABLE_START}\n{flow_files.TABLE_END}\n")
    monkeypatch.setattr(flow_files, "PROJECT_ROOT", tmp_path)
    with pytest.raises(SystemExit, match=r"^out of date with the flow registry: prefect.yaml, README.md \(run"):
        flow_files.main(["--check"])
    flow_files.main([])
    flow_files.main(["--check"])  # now up to date
    assert flow_files.stale(FLOWS, tmp_path) == []
