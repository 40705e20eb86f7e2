"""The project's mypy configuration is strict: `task typecheck` (run by CI) would catch these."""

import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

SAMPLE = """\
def shout(name: str | None) -> str:
    return name.upper()


def shout_checked(name: str | None) -> str:
    if name is None:
        raise ValueError("no name")
    return name.upper()


def untyped(value):
    return value
"""


def test_the_configuration_catches_optional_misuse_and_untyped_functions(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text(SAMPLE)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(PYPROJECT),
            "--cache-dir",
            str(tmp_path / "cache"),
            "sample.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    errors = sorted(line for line in checked.stdout.splitlines() if ": error: " in line)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert errors == [
        "sample.py:11: error: Function is missing a type annotation  [no-untyped-def]",
        'sample.py:2: error: Item "None" of "str | None" has no attribute "upper"  [union-attr]',
    ]
