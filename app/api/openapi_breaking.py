"""Breaking changes between two OpenAPI documents, for a client generated from the older one.

    python -m app.api.openapi_breaking [--base HEAD~1]   # `task openapi-breaking` (BASE=origin/main)

Compares docs/openapi.json with its version at the git revision `--base` and fails on a change that
would break an existing client, unless docs/openapi-breaking-changes.md acknowledges it: a line
`- <the change, as printed>` (a pull request that breaks the contract says so in review).

No registry tool fits here: oasdiff is a Go program (no Go on these machines), openapi-diff reads
OpenAPI 3.0 only, and openapi-changes downloads a binary when installed. This covers what breaks a
generated client: an operation, a status or a parameter taken away; a request asking more (a new
required field or parameter, a refused value, a type changed, `null` refused, a field removed from
a body that refuses unknown ones); a response giving less (a required field gone or made optional,
a value made nullable, a type changed).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.api.openapi_file import OPENAPI_FILE
from app.infrastructure.config import PROJECT_ROOT

ACKNOWLEDGED_FILE = PROJECT_ROOT / "docs" / "openapi-breaking-changes.md"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
Schema = dict[str, Any]


class Comparison:
    def __init__(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.old, self.new = old, new
        self.changes: list[str] = []
        self._seen: set[tuple[str, int, int]] = set()

    def _resolve(self, document: dict[str, Any], schema: Schema) -> Schema:
        while "$ref" in schema:
            name = schema["$ref"].removeprefix("#/components/schemas/")
            schema = {**document["components"]["schemas"][name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def _branches(self, schema: Schema) -> list[Schema]:
        return schema.get("anyOf") or schema.get("oneOf") or [schema]

    def _types(self, document: dict[str, Any], schema: Schema) -> set[str]:
        found = set()
        for option in self._branches(schema):
            branch = self._resolve(document, option)
            kind = branch.get("type")
            found |= set(kind) if isinstance(kind, list) else {kind or ("object" if "properties" in branch else "any")}
        return found

    def _enum(self, document: dict[str, Any], schema: Schema) -> set[Any] | None:
        values: set[Any] = set()
        for option in self._branches(schema):
            branch = self._resolve(document, option)
            if "enum" not in branch and branch.get("type") != "null":
                return None  # a branch without an enum: any value of its type
            values |= set(branch.get("enum", [None]))
        return values

    def _object(self, document: dict[str, Any], schema: Schema) -> Schema | None:
        for option in self._branches(schema):
            branch = self._resolve(document, option)
            if "properties" in branch:
                return branch
        return None

    def schema(self, where: str, old: Schema, new: Schema, *, request: bool) -> None:
        """`request`: the client sends it (the new one may not ask more); else it reads it (the new
        one may not give less)."""
        key = (where, id(old), id(new))
        if key in self._seen:
            return
        self._seen.add(key)
        old_types, new_types = self._types(self.old, old), self._types(self.new, new)
        if "any" not in new_types and "any" not in old_types:
            if request and (lost := old_types - new_types):
                self.changes.append(f"{where}: no longer accepts {', '.join(sorted(map(str, lost)))}")
            if not request and (gained := new_types - old_types):
                self.changes.append(f"{where}: may now be {', '.join(sorted(map(str, gained)))}")
        old_enum, new_enum = self._enum(self.old, old), self._enum(self.new, new)
        if request and new_enum is not None and (old_enum is None or old_enum - new_enum):
            lost_values = sorted(map(str, (old_enum or set()) - new_enum)) or ["values outside an enum"]
            self.changes.append(f"{where}: no longer accepts {', '.join(lost_values)}")
        old_object, new_object = self._object(self.old, old), self._object(self.new, new)
        if old_object is not None and new_object is not None:
            self._properties(where, old_object, new_object, request=request)
        old_items = next((b.get("items") for b in self._branches(self._resolve(self.old, old)) if "items" in b), None)
        new_items = next((b.get("items") for b in self._branches(self._resolve(self.new, new)) if "items" in b), None)
        if old_items is not None and new_items is not None:
            self.schema(f"{where}[]", old_items, new_items, request=request)

    def _properties(self, where: str, old: Schema, new: Schema, *, request: bool) -> None:
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name, old_property in old["properties"].items():
            new_property = new["properties"].get(name)
            if new_property is None:
                if request and new.get("additionalProperties") is False:
                    self.changes.append(f"{where}.{name}: removed (sending it is now refused)")
                elif not request:
                    self.changes.append(f"{where}.{name}: removed")
                continue
            if not request and name in old_required and name not in new_required:
                self.changes.append(f"{where}.{name}: no longer always sent")
            self.schema(f"{where}.{name}", old_property, new_property, request=request)
        if request:
            for name in sorted(new_required - old_required):
                self.changes.append(f"{where}.{name}: now required")

    def operation(self, label: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._parameters(label, old, new)
        self._request_body(label, old, new)
        self._responses(label, old, new)

    def _parameters(self, label: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_parameters = {(p["in"], p["name"]): p for p in old.get("parameters", [])}
        new_parameters = {(p["in"], p["name"]): p for p in new.get("parameters", [])}
        for (place, name), parameter in new_parameters.items():
            if parameter.get("required") and not old_parameters.get((place, name), {}).get("required"):
                self.changes.append(f"{label}: {place} parameter {name} now required")
        for (place, name), parameter in old_parameters.items():
            if (place, name) not in new_parameters:
                self.changes.append(f"{label}: {place} parameter {name} removed")
            else:
                new_schema = new_parameters[place, name].get("schema", {})
                self.schema(f"{label} {place} {name}", parameter.get("schema", {}), new_schema, request=True)

    def _request_body(self, label: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_body = old.get("requestBody", {}).get("content", {})
        new_body = new.get("requestBody", {}).get("content", {})
        if new.get("requestBody", {}).get("required") and not old.get("requestBody", {}).get("required"):
            self.changes.append(f"{label}: request body now required")
        for media_type, media in old_body.items():
            if media_type not in new_body:
                self.changes.append(f"{label}: request body {media_type} no longer accepted")
            else:
                self.schema(
                    f"{label} body", media.get("schema", {}), new_body[media_type].get("schema", {}), request=True
                )

    def _responses(self, label: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        for status, response in old.get("responses", {}).items():
            if status not in new.get("responses", {}):
                if status.startswith("2"):
                    self.changes.append(f"{label}: response {status} removed")
                continue
            new_content = new["responses"][status].get("content", {})
            for media_type, media in response.get("content", {}).items():
                if media_type not in new_content:
                    self.changes.append(f"{label}: response {status} {media_type} removed")
                else:
                    where = f"{label} {status}"
                    self.schema(
                        where, media.get("schema", {}), new_content[media_type].get("schema", {}), request=False
                    )

    def run(self) -> list[str]:
        for path, item in self.old.get("paths", {}).items():
            for method in METHODS:
                if method not in item:
                    continue
                label = f"{method.upper()} {path}"
                new_item = self.new.get("paths", {}).get(path, {})
                if method not in new_item:
                    self.changes.append(f"{label}: operation removed")
                else:
                    self.operation(label, item[method], new_item[method])
        return sorted(set(self.changes))


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return Comparison(old, new).run()


def acknowledged(path: Path | None = None) -> set[str]:
    path = path or ACKNOWLEDGED_FILE
    if not path.exists():
        return set()
    return {line[2:].strip() for line in path.read_text().splitlines() if line.startswith("- ")}


def document_at(revision: str) -> dict[str, Any] | None:
    """docs/openapi.json as committed at `revision`; None when it did not exist there."""
    relative = "docs/openapi.json"
    shown = subprocess.run(  # noqa: S603 (fixed program, the revision is one argument)
        ["git", "show", f"{revision}:{relative}"],  # noqa: S607
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="the git revision whose document clients have")
    arguments = parser.parse_args(argv)
    old = document_at(arguments.base)
    if old is None:
        print(f"no docs/openapi.json at {arguments.base}: nothing to compare with")  # noqa: T201
        return 0
    changes = breaking_changes(old, json.loads(OPENAPI_FILE.read_text()))
    unacknowledged = [change for change in changes if change not in acknowledged()]
    for change in changes:
        print(f"{'acknowledged' if change not in unacknowledged else 'BREAKING'}: {change}")  # noqa: T201
    if unacknowledged:
        name = ACKNOWLEDGED_FILE.name
        print(  # noqa: T201
            f"\n{len(unacknowledged)} breaking change(s) since {arguments.base}. If intended, acknowledge each "
            f"in docs/{name} with a line '- <the change as printed above>' (and tell the clients).",
            file=sys.stderr,
        )
        return 1
    print(f"no unacknowledged breaking change since {arguments.base}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
