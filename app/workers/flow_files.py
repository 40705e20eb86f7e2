"""The files that describe the registered flows outside the code, written from the registry.

    python -m app.workers.flow_files          # `task sync-flows`: rewrite prefect.yaml and README's table
    python -m app.workers.flow_files --check  # exit 1, naming the stale files, if either is out of date

prefect.yaml is written whole; in README.md only the lines between the two `flows` markers.
"""

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

import prefect

from app.infrastructure.config import PROJECT_ROOT
from app.workers import HEARTBEAT_SECONDS, HEARTBEAT_SETTING
from app.workers.crash_detection import ensure_crash_detection
from app.workers.flows import FLOWS
from app.workers.policy import COLLISION_STRATEGY
from app.workers.registry import RegisteredFlow

WORK_POOL = "app-flows"
POOL = "pool"  # the deployments' name: <flow>/pool (`serve`'s are <flow>/served)
TABLE_START = "<!-- flows: written by `uv run task sync-flows` from app/workers/flows/__init__.py -->"
TABLE_END = "<!-- /flows -->"

PREFECT_YAML_HEADER = f"""\
# Written by `uv run task sync-flows` from the flow registry (app/workers/flows/__init__.py): edit the
# registry, not this file (a test fails while the two differ).
# The flows as deployments `<flow>/{POOL}` on the Prefect *process work pool* `{WORK_POOL}`, for workers
# on several machines: README, "Workers", lists the commands and the settings each machine needs (a
# test runs them as written). The build step creates or updates the automation that marks dead runs
# Crashed; each run sends heartbeats every {HEARTBEAT_SECONDS} s for it, and a run that would exceed a
# deployment's concurrency limit is cancelled (app/workers/policy.py). The schedules are the
# registry's defaults (FLOW_SCHEDULES applies to `serve`). One worker process without a pool:
# `uv run task worker`.
"""


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(text)


def prefect_yaml(flows: Mapping[str, RegisteredFlow]) -> str:
    lines = [
        PREFECT_YAML_HEADER.rstrip("\n"),
        "name: backend-template",
        f"prefect-version: {prefect.__version__}",
        "",
        "build:",
        f"  - {ensure_crash_detection.__module__}.{ensure_crash_detection.__name__}: {{}}",
        "",
        "pull:",
        "  - prefect.deployments.steps.set_working_directory:",
        '      directory: "{{ $APP_DIR }}"',
        "",
        "deployments:",
    ]
    for entry in flows.values():
        lines += [
            f"  - name: {POOL}",
            f"    entrypoint: {entry.entrypoint}",
            "    work_pool:",
            f"      name: {WORK_POOL}",
            "      job_variables:",
            "        env:",
            f"          {HEARTBEAT_SETTING}: {_quoted(str(HEARTBEAT_SECONDS))}",
            "    concurrency_limit:",
            f"      limit: {entry.concurrency_limit}",
            f"      collision_strategy: {COLLISION_STRATEGY.value}",
        ]
        if entry.cron is None:
            lines.append("    schedules: []")
        else:
            lines += ["    schedules:", f"      - cron: {_quoted(entry.cron)}", "        timezone: UTC"]
    return "\n".join(lines) + "\n"


def readme_table(flows: Mapping[str, RegisteredFlow]) -> str:
    rows = ["| flow | default schedule (UTC) | what it does |", "|---|---|---|"]
    for name, entry in flows.items():
        schedule = f"`{entry.cron}`" if entry.cron else "on demand"
        summary = entry.summary.replace("|", "\\|")
        rows.append(f"| `{name}` | {schedule} | {summary} |")
    return "\n".join(rows)


def with_table(readme: str, table: str) -> str:
    """README's text with the lines between the markers replaced by `table`."""
    before, start, rest = readme.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not (start and end):
        raise ValueError(f"README.md lacks the flow table's markers: {TABLE_START} ... {TABLE_END}")
    return f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}"


def expected(flows: Mapping[str, RegisteredFlow], root: Path | None = None) -> dict[Path, str]:
    """Each file (of the project at `root`, by default this one), as the registry would have it."""
    root = root or PROJECT_ROOT
    readme = root / "README.md"
    return {
        root / "prefect.yaml": prefect_yaml(flows),
        readme: with_table(readme.read_text(encoding="utf-8"), readme_table(flows)),
    }


def stale(flows: Mapping[str, RegisteredFlow], root: Path | None = None) -> list[Path]:
    return [
        path
        for path, text in expected(flows, root).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.workers.flow_files", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    outdated = stale(FLOWS)
    if args.check:
        if outdated:
            names = ", ".join(path.name for path in outdated)
            raise SystemExit(f"out of date with the flow registry: {names} (run `uv run task sync-flows`)")
        return
    for path, text in expected(FLOWS).items():
        if path in outdated:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.name}")  # noqa: T201


if __name__ == "__main__":
    main()
