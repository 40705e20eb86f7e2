"""README's "Adding a flow", followed word for word in a copy of the project.

The flow file and the registry lines are README's own code blocks; the commands are README's
`uv run task ...` ones, run with this environment's tools (`task` from the venv, the copy first on
PYTHONPATH). Then: lint, typecheck and the registry-derived tests pass in the copy, the flow runs,
and the only files that changed are the flow's own, the registry, and the two that `sync-flows`
writes (README only between its markers).
"""

import difflib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from prefect.settings import PREFECT_API_URL

from app.infrastructure.config import PROJECT_ROOT
from app.workers import flow_files

REGISTRY = "app/workers/flows/__init__.py"
TOOL_OUTPUT = {".mypy_cache", ".ruff_cache", ".pytest_cache", ".import_linter_cache", "__pycache__", "var"}
GENERATED = {"prefect.yaml", "README.md"}
NOT_COPIED = (".git", ".venv", ".env", ".coverage*", "htmlcov", *TOOL_OUTPUT)
# `uv run task test` runs the whole suite, which the surrounding run covers: in the copy, the tests
# that derive from the registry (and the settings file they keep in step).
REGISTRY_TESTS = "tests/workers/test_registry.py tests/test_settings.py -p no:cacheprovider"


def recipe() -> tuple[str, list[str], list[str]]:
    """The flow's path, the code blocks (file, import, entry) and the task commands, in order."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Adding a flow\n", 1)[1].split("\n## ", 1)[0]
    path = re.search(r"^1\. `(app/workers/flows/\w+\.py)`", section, re.MULTILINE)
    assert path, "step 1 names the flow's file"
    blocks = [
        textwrap.dedent(block)
        for _, block in re.findall(r"^( *)```python\n(.*?)^\1```", section, re.MULTILINE | re.DOTALL)
    ]
    commands = re.findall(r"`uv run task ([^`]+)`", section)
    return path.group(1), blocks, commands


def snapshot(root: Path) -> dict[str, str]:
    """Every file's hash, leaving out what the tools write (caches, the copy's SQLite database)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file() and not set(path.relative_to(root).parts) & TOOL_OUTPUT
    }


def outside_the_table(readme: str) -> str:
    before, rest = readme.split(flow_files.TABLE_START)
    return before + rest.split(flow_files.TABLE_END)[1]


def test_the_recipe_adds_a_flow_by_its_own_file_and_one_registry_entry(tmp_path: Path, prefect_harness: None) -> None:
    started = time.monotonic()
    flow_path, (flow_code, import_line, registry_tail), commands = recipe()
    entry_lines = registry_tail.splitlines(keepends=True)[1:-1]  # between `FLOWS = FlowRegistry(` and `)`
    assert entry_lines[0] == "    ...,\n"  # the entries already there
    entry_lines = entry_lines[1:]
    name = re.search(r'@flow\(name="([a-z0-9-]+)"', flow_code)
    assert name, "the flow is named"
    assert commands == [
        "sync-flows",
        "format",
        f"flow -- {name.group(1)}",
        "worker",
        "lint",
        "typecheck",
        "test",
    ]

    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, project, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    if (PROJECT_ROOT / ".mypy_cache").is_dir():  # a warm cache keeps `task typecheck` to seconds
        shutil.copytree(PROJECT_ROOT / ".mypy_cache", project / ".mypy_cache", dirs_exist_ok=True)
    before = snapshot(project)
    readme_before = (project / "README.md").read_text()
    registry_before = (project / REGISTRY).read_text()
    venv_bin = Path(sys.executable).parent
    env = {
        key: value
        for key, value in os.environ.items()
        # the copy on SQLite alone, with no Clerk, outside CI's rules and this run's coverage
        if key not in {"DATABASE_URL", "TEST_POSTGRES_URL", "CI"} and not key.startswith(("CLERK_", "COV_", "COVERAGE"))
    }
    env |= {
        "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv_bin.parent),
        "PYTHONPATH": str(project),
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the harness's server: no temporary one per run
    }

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False)

    timings: dict[str, float] = {}

    def task(command: str) -> str:
        start = time.monotonic()
        done = run("task", *command.split())
        timings[command.split(maxsplit=1)[0]] = time.monotonic() - start
        assert done.returncode == 0, f"task {command}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    # 1. The flow's own file.
    (project / flow_path).write_text(flow_code)
    # 2. The registry: the import after the others (`task format` sorts it), the entry at the end of FLOWS.
    registry = (project / REGISTRY).read_text().splitlines(keepends=True)
    last_import = max(i for i, line in enumerate(registry) if line.startswith("from "))
    registry.insert(last_import + 1, import_line)
    closing = max(i for i, line in enumerate(registry) if line == ")\n")
    registry[closing:closing] = entry_lines
    (project / REGISTRY).write_text("".join(registry))

    stale = run(sys.executable, "-m", "app.workers.flow_files", "--check")
    assert stale.returncode == 1
    assert "out of date with the flow registry: prefect.yaml, README.md" in stale.stderr

    # 3. and 4., as README says them.
    task("sync-flows")
    task("format")
    result = task(f"flow -- {name.group(1)}")
    assert result.splitlines()[-1] == '{"signups": 0}', result  # nobody joined the copy's empty database
    task("lint")
    task("typecheck")
    task(f"test -- {REGISTRY_TESTS}")

    after = snapshot(project)
    changed = {path for path in before.keys() & after.keys() if before[path] != after[path]}
    assert after.keys() - before.keys() == {flow_path}
    assert before.keys() - after.keys() == set()
    assert changed == {REGISTRY, *GENERATED}
    readme_after = (project / "README.md").read_text()
    assert outside_the_table(readme_after) == outside_the_table(readme_before)
    assert f"| `{name.group(1)}` |" in readme_after
    assert f"entrypoint: {flow_path}:" in (project / "prefect.yaml").read_text()

    by_hand = list(difflib.ndiff(registry_before.splitlines(), (project / REGISTRY).read_text().splitlines()))
    added, removed = (sum(line.startswith(sign) for line in by_hand) for sign in ("+ ", "- "))
    print(  # the numbers README's recipe is judged by (pytest -s, or -rP)
        f"\nAdding a flow: {len(flow_code.splitlines())} lines in its own file; outside it, one file by hand "
        f"({REGISTRY}: +{added} -{removed} lines) and {len(GENERATED)} written by sync-flows; "
        f"{time.monotonic() - started:.0f} s for the steps and checks ("
        + ", ".join(f"{command} {seconds:.1f} s" for command, seconds in timings.items())
        + ")"
    )
