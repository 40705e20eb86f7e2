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

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.rate:
            return None
        return self.app.rate / self.baseline.rate


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    value: str
    met: bool


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def scenario_line(scenario: Scenario) -> str:
    app = scenario.app
    line = f"{scenario.name:<34} {app.rate:8.0f} {scenario.unit:<8} p50 {app.p50_ms:7.2f} ms  p99 {app.p99_ms:7.2f} ms"
    if scenario.baseline is not None:
        line += f"  | bare {scenario.baseline.rate:8.0f} req/s  ratio {_ratio(scenario.ratio)}"
        line += f"  | CPU/request app {_cpu(app)}, bare {_cpu(scenario.baseline)}"
    return line


def _cpu(result: LoadResult | None) -> str:
    return "—" if result is None or result.cpu_us is None else f"{result.cpu_us:.0f} µs"


def target_line(target: Target) -> str:
    return f"{'met ' if target.met else 'MISSED'}  {target.name}: {target.value} (target {target.goal})"


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
        "| app CPU/req | baseline CPU/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
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
            _cpu(app),
            _cpu(scenario.baseline),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.goal} | {t.value} | {'yes' if t.met else '**no**'} |" for t in targets]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def write_results(scenarios: list[Scenario], targets: list[Target], notes: list[str]) -> None:
    RESULTS.write_text(markdown(environment(), scenarios, targets, notes))
