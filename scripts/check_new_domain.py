"""CI's check of `task new-domain`: its templates still make domains that pass every gate.

    uv run python -m scripts.check_new_domain        # SQLite; PostgreSQL too with TEST_POSTGRES_URL

In a copy of the checkout (what git tracks, and the working tree's files it does not ignore), it
generates one domain of each owner kind with every field type — among them the issue's `invoices`,
owned by organizations, with an enum and a reference to `projects` — then runs `task lint` (which
checks docs/openapi.json, as the generator rewrote it, and lints it with Redocly and Spectral),
`task typecheck`, the generated tests and the contract tests (migrations, layout, the HTTP and
OpenAPI contracts), and checks the generator refuses to write a domain twice. The copy is deleted at
the end (`--keep` keeps it); it prints how long each step took.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.try_adding_a_domain import ROOT, Run, prepare

DOMAINS = {
    "invoices": [
        "--owned-by", "organization",
        "--field", "number:str:40",
        "--field", "notes:text",
        "--field", "amount:decimal:12,2",
        "--field", "status:enum:draft,sent,paid",
        "--field", "project_id:fk:projects",
        "--field", "issued_at:datetime",
        "--field", "quantity:int",
        "--field", "paid:bool",
    ],
    "reminders": [
        "--owned-by", "user",
        "--field", "title:str:120",
        "--field", "body:text:4000",
        "--field", "priority:int",
        "--field", "done:bool",
        "--field", "budget:decimal:8,0",
        "--field", "due_at:datetime",
        "--field", "channel:enum:email,sms",
        "--field", "project_id:fk:projects",
    ],
}  # fmt: skip
CONTRACT_TESTS = [
    "tests/test_migrations.py",
    "tests/test_domain_layout.py",
    "tests/api/test_http_contract.py",
    "tests/api/test_openapi_contract.py",  # the generated operations' schemas state what they check
]
TASK = ("uv", "run", "task")
LINTERS = "tests/contract/node_modules"  # Redocly and Spectral, which `task lint` runs on docs/openapi.json


def generated_tests(name: str) -> list[str]:
    return [f"tests/api/test_{name}_api.py", f"tests/domains/test_{name}_service.py"]


def check(run: Run) -> None:
    run("uv sync --locked (the copy's own environment)", "uv", "sync", "--locked", "--quiet")
    dry = run(
        "task new-domain --dry-run (invoices)",
        *TASK,
        "-s",
        "new-domain",
        "--",
        "invoices",
        *DOMAINS["invoices"],
        "--dry-run",
    )
    untouched = subprocess.run(
        ["git", "status", "--porcelain"], cwd=run.copy, capture_output=True, text=True, check=True
    )
    if "app/domains/invoices/service.py" not in dry or untouched.stdout.strip():
        print(f"FAIL the dry run did not list the files, or wrote some:\n{dry}\n{untouched.stdout}")
        raise SystemExit(1)
    for name, arguments in DOMAINS.items():
        run(f"task new-domain -- {name} (owned by {arguments[1]})", *TASK, "-s", "new-domain", "--", name, *arguments)
    refused = subprocess.run(
        [*TASK, "-s", "new-domain", "--", "invoices", *DOMAINS["invoices"]],
        cwd=run.copy,
        env=run.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if refused.returncode == 0 or "refused" not in refused.stderr:
        print(f"FAIL a second `new-domain invoices` was not refused:\n{refused.stdout}{refused.stderr}")
        raise SystemExit(1)
    run("task lint", *TASK, "lint")
    run("task typecheck", *TASK, "typecheck")
    tests = [path for name in DOMAINS for path in generated_tests(name)] + CONTRACT_TESTS
    postgres = os.environ.get("TEST_POSTGRES_URL")
    backends = "SQLite and PostgreSQL" if postgres else "SQLite only: TEST_POSTGRES_URL is unset"
    test_env = run.env | ({"TEST_POSTGRES_URL": postgres} if postgres else {})
    run(
        f"the generated and contract tests ({backends})",
        *TASK,
        "test",
        "--",
        "-q",
        "-p",
        "no:cacheprovider",
        *tests,
        env=test_env,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    args = parser.parse_args()
    started = time.monotonic()
    copy = Path(tempfile.mkdtemp(prefix="new-domain-check-"))
    try:
        run = Run(copy, prepare(copy))
        if (ROOT / ".mypy_cache").is_dir():  # warm: typecheck re-reads only what changed (~90 s cold)
            shutil.copytree(ROOT / ".mypy_cache", copy / ".mypy_cache")
        if (ROOT / LINTERS).is_dir():  # `task openapi-tools` done here: no `npm ci` in the copy (~45 s)
            shutil.copytree(ROOT / LINTERS, copy / LINTERS, symlinks=True)
        check(run)
        print(f"seconds, from the copy to the last check: {time.monotonic() - started:.0f}")
        return 0
    finally:
        if args.keep:
            print(f"the copy: {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
