"""docs/openapi.json: the committed OpenAPI document, so a change to the contract shows in review.

    python -m app.api.openapi_file            # write it (`task openapi`)
    python -m app.api.openapi_file --check    # fail if it differs from the code's (`task openapi-check`)

Sorted keys, two-space indent, a trailing newline: the same code always writes the same bytes.
Building it touches no database (the app is created, never started).
"""

import argparse
import difflib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.infrastructure.config import PROJECT_ROOT, Settings

OPENAPI_FILE = PROJECT_ROOT / "docs" / "openapi.json"


def current_document() -> dict[str, Any]:
    from app.api.main import create_app  # noqa: PLC0415 (the app's imports only when asked)
    from app.api.openapi import openapi_document  # noqa: PLC0415

    # The engine is created but never connects: no file appears, whatever DATABASE_URL says.
    unused = f"sqlite:///{Path(tempfile.gettempdir()) / 'openapi-document.db'}"
    return openapi_document(create_app(Settings(_env_file=None, environment="development", database_url=unused)))


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check(path: Path) -> list[str]:
    """The differences between the file and the code's document, as a unified diff (empty: none)."""
    expected = render(current_document())
    actual = path.read_text() if path.exists() else ""
    return list(difflib.unified_diff(actual.splitlines(), expected.splitlines(), str(path), "the code", lineterm=""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file differs from the code's document")
    parser.add_argument("--path", type=Path, default=OPENAPI_FILE)
    arguments = parser.parse_args(argv)
    if arguments.check:
        if difference := check(arguments.path):
            shown = "\n".join(difference[:80]) + ("\n..." if len(difference) > 80 else "")
            advice = f"{arguments.path} is not the code's OpenAPI document: run `uv run task openapi`"
            print(f"{shown}\n\n{advice}", file=sys.stderr)  # noqa: T201
            return 1
        print(f"{arguments.path} is up to date")  # noqa: T201
        return 0
    arguments.path.parent.mkdir(parents=True, exist_ok=True)
    arguments.path.write_text(render(current_document()))
    print(f"wrote {arguments.path}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
