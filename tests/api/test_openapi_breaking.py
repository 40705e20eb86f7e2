"""The breaking-change check of the OpenAPI document: what breaks a generated client is caught,
what only adds is not, and an acknowledged change passes."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.api import openapi_breaking
from app.api.openapi_breaking import acknowledged, breaking_changes
from app.api.openapi_file import OPENAPI_FILE


@pytest.fixture
def document() -> dict[str, Any]:
    return json.loads(OPENAPI_FILE.read_text())


def test_the_document_does_not_break_itself(document: dict[str, Any]) -> None:
    assert breaking_changes(document, copy.deepcopy(document)) == []


def test_what_breaks_a_client_is_caught(document: dict[str, Any]) -> None:
    changed = copy.deepcopy(document)
    schemas = changed["components"]["schemas"]
    del changed["paths"]["/api/jobs"]["get"]
    schemas["UserCreate"]["required"].append("first_name")
    schemas["Role"]["enum"].remove("member")
    del schemas["UserPublic"]["properties"]["clerk_id"]
    schemas["ProjectPublic"]["properties"]["name"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    del schemas["UserUpdate"]["properties"]["last_name"]
    changes = breaking_changes(document, changed)
    for expected in (
        "GET /api/jobs: operation removed",
        "POST /api/users body.first_name: now required",
        "POST /api/users body.role: no longer accepts member",
        "GET /api/users/me 200.clerk_id: removed",
        "GET /api/projects 200.items[].name: may now be null",
        "PATCH /api/users/me body.last_name: removed (sending it is now refused)",
    ):
        assert expected in changes


def test_what_only_adds_is_not_breaking(document: dict[str, Any]) -> None:
    changed = copy.deepcopy(document)
    schemas = changed["components"]["schemas"]
    schemas["UserCreate"]["properties"]["nickname"] = {"type": "string"}  # optional in a request
    schemas["UserPublic"]["properties"]["nickname"] = {"type": "string"}  # one more field sent
    schemas["UserPublic"]["required"].append("nickname")
    schemas["Role"]["enum"].append("auditor")  # a request accepts one more value
    changed["paths"]["/api/extra"] = copy.deepcopy(changed["paths"]["/health"])
    assert breaking_changes(document, changed) == []


def test_an_acknowledged_change_passes(
    document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = copy.deepcopy(document)
    del changed["paths"]["/api/jobs"]["get"]
    monkeypatch.setattr(openapi_breaking, "document_at", lambda revision: document)
    current = tmp_path / "openapi.json"
    current.write_text(json.dumps(changed))
    monkeypatch.setattr(openapi_breaking, "OPENAPI_FILE", current)
    notes = tmp_path / "acknowledged.md"
    monkeypatch.setattr(openapi_breaking, "ACKNOWLEDGED_FILE", notes)
    notes.write_text("# breaks\n")
    assert openapi_breaking.main(["--base", "main"]) == 1
    assert "BREAKING: GET /api/jobs: operation removed" in capsys.readouterr().out
    notes.write_text("# breaks\n- GET /api/jobs: operation removed\n")
    assert acknowledged(notes) == {"GET /api/jobs: operation removed"}
    assert openapi_breaking.main(["--base", "main"]) == 0


def test_a_base_without_the_document_has_nothing_to_compare_with() -> None:
    assert openapi_breaking.document_at("4b825dc642cb6eb9a060e54bf8d69288fbee4904") is None  # git's empty tree
