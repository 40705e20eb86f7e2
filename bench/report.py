"""What a run prints, and bench/results.md (overwritten by every run)."""

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench.load import LoadResult

RESULTS = Path(__file__).resolve().parent / "results.md"
PACKAGES = ("litestar", "sqlalchemy", "psycopg2-binary", "uvicorn")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    app: LoadResult
    baseline: LoadResult | None = None
    unit: str = "req/s"
    off: LoadResult | None = None  # a variant's: the same app with observability off, same rounds

    @property
    def ratio(self) -> float | None:
        return _rate_ratio(self.app, self.baseline)

    @property
    def ratio_to_off(self) -> float | None:
        return _rate_ratio(self.app, self.off)


def _rate_ratio(result: LoadResult, reference: LoadResult | None) -> float | None:
    return None if reference is None or not reference.rate else result.rate / reference.rate


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    value: str
    met: bool | None  # None: quoted, no bar to meet


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def scenario_line(scenario: Scenario) -> str:
    app = scenario.app
    line = f"{scenario.name:<34} {app.rate:8.0f} {scenario.unit:<8} p50 {app.p50_ms:7.2f} ms  p99 {app.p99_ms:7.2f} ms"
    if scenario.baseline is not None:
        line += f"  | bare {scenario.baseline.rate:8.0f} req/s  ratio {_ratio(scenario.ratio)}"
        line += f"  | CPU/request app {cpu_per_request(app)}, bare {cpu_per_request(scenario.baseline)}"
    if scenario.off is not None:
        line += f"  | vs observability off {_ratio(scenario.ratio_to_off)}, CPU/request {cpu_per_request(scenario.off)}"
    return line


def cpu_per_request(result: LoadResult | None) -> str:
    return "—" if result is None or result.cpu_us is None else f"{result.cpu_us:.0f} µs"


def target_line(target: Target) -> str:
    if target.met is None:
        return f"quoted  {target.name}: {target.value}"
    return f"{'met   ' if target.met else 'MISSED'}  {target.name}: {target.value} (target {target.goal})"


def environment() -> dict[str, str]:
    versions = {name.removesuffix("-binary"): version(name) for name in PACKAGES}
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        **versions,
    }


def _load_cells(result: LoadResult | None) -> list[str]:
    if result is None:
        return ["—"]
    return [f"{result.rate:.0f}"]


def markdown(header: dict[str, str], scenarios: list[Scenario], targets: list[Target], notes: list[str]) -> str:
    lines = [
        "# `task bench` results",
        "",
        "Written by `python -m bench.run` (overwritten on every run); see the docstring of bench/run.py.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        "| " + " | ".join(header.values()) + " |",
        "",
        "| scenario | app req/s | app p50 (ms) | app p99 (ms) | baseline req/s | ratio "
        "| ratio to observability off | app CPU/req | baseline CPU/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        app = scenario.app
        cells = [
            scenario.name,
            f"{app.rate:.0f}" + ("" if scenario.unit == "req/s" else f" {scenario.unit}"),
            f"{app.p50_ms:.2f}",
            f"{app.p99_ms:.2f}",
            *_load_cells(scenario.baseline),
            _ratio(scenario.ratio),
            _ratio(scenario.ratio_to_off),
            cpu_per_request(app),
            cpu_per_request(scenario.baseline),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.goal} | {t.value} | {_verdict(t.met)} |" for t in targets]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _verdict(met: bool | None) -> str:
    return "quoted" if met is None else "yes" if met else "**no**"


def write_results(scenarios: list[Scenario], targets: list[Target], notes: list[str]) -> None:
    RESULTS.write_text(markdown(environment(), scenarios, targets, notes))
