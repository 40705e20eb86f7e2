"""README's "Adding a domain", followed word for word in a copy of the repository.

    uv run python -m scripts.try_adding_a_domain            # SQLite; PostgreSQL too with TEST_POSTGRES_URL
    uv run python -m scripts.try_adding_a_domain --full     # the whole suite instead of the domain's tests

It copies what git tracks, and the working tree's other files it does not ignore, into a temporary
directory, then does what README says and nothing else:
- writes every file the section shows (a bold path, then a python block). A file that exists already
  (the models registry, the list of controllers) is edited as a person would: the block's imports
  are added to the file's, and a list it shows as `name = [..., entries]` gets those entries at its end;
- `task migrate-create -- "add notes"`, `task format`, `task openapi`, `task lint`, `task typecheck`;
- the new domain's tests and the contract tests (`task test -- ...`: SQLite, and PostgreSQL when
  TEST_POSTGRES_URL is set; the suite drops that database's schema);
- `task generate-user` first (the Quick start, before the domain exists), and once the domain is in,
  `task generate-key --scopes notes:read,notes:write`; a request with each key: the first gets
  403 on the new routes (keys never gain scopes), the second 201.
Then it lists what changed outside the domain's own new files and how long each step took, and fails
when a step failed or when README's steps touched any other existing file.
"""

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "### Adding a domain"
BLOCK = re.compile(
    r"\*\*`(?P<path>[^`]+\.py)`\*\*(?:(?!```).)*?\n(?P<indent>[ ]*)```python\n(?P<code>.*?)\n(?P=indent)```", re.S
)
DOMAIN = "notes"
# The new files README's steps create (migrations/versions/*: the one migrate-create writes).
OWN_FILES = re.compile(
    rf"^(app/domains/{DOMAIN}/.*|app/api/routes/{DOMAIN}\.py|tests/.*{DOMAIN}.*|migrations/versions/.*)$"
)
# The existing files they change: the two lines README names, and the OpenAPI document `task openapi`
# rewrites with the new routes.
EDITED = {"app/models.py", "app/api/controllers.py", "docs/openapi.json"}
CONTRACT_TESTS = [
    "tests/api/test_http_contract.py",
    "tests/api/test_fuzz_openapi.py",
    "tests/api/test_openapi_contract.py",
    "tests/test_migrations.py",
    "tests/test_domain_layout.py",
    "tests/test_architecture.py",
]
EMAIL = "you@example.com"
TASK = ("uv", "run", "task", "-s")  # -s: only the command's own output
# Run in the copy, with its own environment: the key the Quick start made, then the one README mints.
REQUESTS = """
import json, sys
from litestar.testing import TestClient
from app.api.main import create_app

old_key, new_key = sys.argv[1:]
with TestClient(create_app()) as client:
    refused = client.get("/api/notes", headers={"X-API-Key": old_key}).status_code
    created = client.post("/api/notes", json={"title": "from README"}, headers={"X-API-Key": new_key})
print(json.dumps({"old key, GET /api/notes": refused, "new key, POST /api/notes": created.status_code}))
"""


def recipe_files(readme: str) -> dict[str, str]:
    """path -> content of every file README's "Adding a domain" shows, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start)
    section = readme[start : end if end != -1 else None]
    return {match["path"]: textwrap.dedent(match["code"]) + "\n" for match in BLOCK.finditer(section)}


def merge_into(existing: str, block: str) -> str:
    """What a person does with a few lines README gives for an existing file: its imports join the
    file's (after the last one), and a list it shows as `name = [..., entries]` (`...` for what is
    there) gets those entries at the end of the file's list of that name, one a line."""
    lines, given = existing.splitlines(), block.splitlines()
    for statement in ast.parse(block).body:
        text = "\n".join(given[statement.lineno - 1 : statement.end_lineno])  # with its comment
        if isinstance(statement, ast.Import | ast.ImportFrom):
            last_import = max(i for i, line in enumerate(lines) if line.startswith(("import ", "from ")))
            lines.insert(last_import + 1, text)
        elif (appended := _appended_entries(statement)) is not None:
            name, entries = appended
            target = _list_assigned(ast.parse("\n".join(lines)), name)
            closing = (target.end_lineno or 0) - 1  # the line of its `]`
            if not target.elts or target.elts[-1].lineno - 1 == closing:
                raise ValueError(f"the file's `{name}` is not written one entry a line")
            indent = " " * target.elts[-1].col_offset
            lines[closing:closing] = [f"{indent}{ast.get_source_segment(block, entry)}," for entry in entries]
        else:
            raise ValueError(f"README shows a statement to add that is neither an import nor `x = [..., y]`: {text}")
    return "\n".join(lines) + "\n"


def _appended_entries(statement: ast.stmt) -> tuple[str, list[ast.expr]] | None:
    """(name, entries) of `name = [..., entries]`, else None."""
    if not (isinstance(statement, ast.Assign) and isinstance(target := statement.targets[0], ast.Name)):
        return None
    value = statement.value
    if isinstance(value, ast.List) and value.elts and isinstance(first := value.elts[0], ast.Constant):
        return (target.id, value.elts[1:]) if first.value is Ellipsis else None
    return None


def _list_assigned(module: ast.Module, name: str) -> ast.List:
    for statement in module.body:
        if (
            isinstance(statement, ast.Assign)
            and isinstance(target := statement.targets[0], ast.Name)
            and target.id == name
            and isinstance(statement.value, ast.List)
        ):
            return statement.value
    raise ValueError(f"the file has no list `{name} = [...]` to add entries to")


@dataclass
class Run:
    copy: Path
    env: dict[str, str]
    steps: list[tuple[str, float, bool]] = field(default_factory=list)

    def __call__(self, name: str, *command: str, env: dict[str, str] | None = None) -> str:
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=self.copy, env=env or self.env, capture_output=True, text=True, check=False
        )
        passed = result.returncode == 0
        self.steps.append((name, time.monotonic() - started, passed))
        print(f"{'ok  ' if passed else 'FAIL'} {time.monotonic() - started:6.1f} s  {name}", flush=True)
        if not passed:
            print(textwrap.indent((result.stdout + result.stderr)[-6000:], "     | "), flush=True)
            raise SystemExit(1)
        return result.stdout


def copy_repository(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def changes(copy: Path) -> list[tuple[str, str, int, int]]:
    """(status, path, lines added, lines removed) against the copy's first commit."""
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    numstat = subprocess.run(
        ["git", "diff", "--cached", "--numstat"], cwd=copy, capture_output=True, text=True, check=True
    ).stdout
    status = subprocess.run(
        ["git", "diff", "--cached", "--name-status"], cwd=copy, capture_output=True, text=True, check=True
    ).stdout
    kinds = {path: kind for kind, path in (line.split("\t", 1) for line in status.splitlines())}
    rows = []
    for line in numstat.splitlines():
        added, removed, path = line.split("\t")
        rows.append((kinds[path], path, int(added), int(removed)))
    return rows


def prepare(copy: Path) -> dict[str, str]:
    """The copy, committed as it is (so `git diff` shows README's changes), and its environment."""
    copy_repository(copy)
    git = ["git", "-c", "user.name=recipe", "-c", "user.email=recipe@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    subprocess.run([*git, "commit", "-qm", "before"], cwd=copy, check=True)
    ours = ("VIRTUAL_ENV", "UV_PROJECT", "DATABASE_", "TEST_POSTGRES", "PYTHONPATH")  # this checkout's
    return {name: value for name, value in os.environ.items() if not name.startswith(ours)} | {"UV_OFFLINE": "1"}


def follow_readme(run: Run, files: dict[str, str], full: bool) -> bool:
    """README's steps in the copy; whether the keys behaved as it says."""
    run("uv sync --locked (the copy's own environment)", "uv", "sync", "--locked", "--quiet")
    quick_start = ["--email", EMAIL, "--role", "admin", "--json"]
    made = run(
        "task generate-user (README's Quick start, before the domain)", *TASK, "generate-user", "--", *quick_start
    )
    for path, content in files.items():
        target = run.copy / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(merge_into(target.read_text(), content) if target.exists() else content)
    print(f"wrote {len(files)} files from README: {', '.join(files)}", flush=True)
    run("task migrate-create -- 'add notes'", "uv", "run", "task", "migrate-create", "--", "add notes")
    run("task format", "uv", "run", "task", "format")
    run("task openapi", "uv", "run", "task", "openapi")
    run("task lint", "uv", "run", "task", "lint")
    run("task typecheck", "uv", "run", "task", "typecheck")
    tests = [] if full else [path for path in files if path.startswith("tests/")] + CONTRACT_TESTS
    postgres = os.environ.get("TEST_POSTGRES_URL")
    backends = "SQLite and PostgreSQL" if postgres else "SQLite only: TEST_POSTGRES_URL is unset"
    which = "the whole suite" if full else "the domain's and the contract tests"
    test_env = run.env | ({"TEST_POSTGRES_URL": postgres} if postgres else {})
    run(f"task test ({which}; {backends})", "uv", "run", "task", "test", "--", "-q", *tests, env=test_env)
    scopes = ["--scopes", "notes:read,notes:write"]
    minted = run(
        "task generate-key (the domain's scopes)", *TASK, "generate-key", "--", "--email", EMAIL, *scopes, "--json"
    )
    user, key = json.loads(made.splitlines()[-1]), json.loads(minted.splitlines()[-1])
    statuses = json.loads(
        run("a request with each key", "uv", "run", "python", "-c", REQUESTS, user["api_key"], key["api_key"])
    )
    print(f"     {statuses}")
    return list(statuses.values()) == [403, 201]


def report(copy: Path, started: float) -> bool:
    """What README's steps changed; whether that is, outside the domain, only the two lines it names
    and the regenerated OpenAPI document."""
    rows = changes(copy)
    outside = [row for row in rows if row[0] != "A" or not OWN_FILES.match(row[1])]
    print("\nchanged outside the domain's own new files:")
    for kind, path, added, removed in outside:
        print(f"  {kind} {path}: +{added} -{removed}")
    own = [row for row in rows if row not in outside]
    print(f"the domain's new files: {len(own)}, {sum(row[2] for row in own)} lines")
    print(f"minutes, from the copy to the last check: {(time.monotonic() - started) / 60:.1f}")
    return {row[1] for row in outside} == EDITED and all(row[0] == "M" for row in outside)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run the whole suite, not only the domain's tests")
    parser.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    args = parser.parse_args()
    files = recipe_files((ROOT / "README.md").read_text())
    started = time.monotonic()
    copy = Path(tempfile.mkdtemp(prefix="adding-a-domain-"))
    try:
        run = Run(copy, prepare(copy))
        if not follow_readme(run, files, args.full):
            print("FAIL the keys did not behave as README says (403 with the old key, 201 with the new)")
            return 1
        if not report(copy, started):
            print(f"FAIL README's steps changed other files than {', '.join(sorted(EDITED))}")
            return 1
        return 0
    finally:
        if args.keep:
            print(f"the copy: {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
