"""`task new-domain`, the fast part: what it would write (--dry-run), and what it refuses.
`scripts/check_new_domain.py` (CI) generates domains in a copy and runs every gate on them."""

import ast
import subprocess

import pytest

from app.infrastructure.config import PROJECT_ROOT
from scripts.new_domain.__main__ import main, plan, refusals
from scripts.new_domain.domain import Domain
from scripts.new_domain.names import SpecError, singular_of

INVOICES = [
    "invoices",
    "--owned-by",
    "organization",
    *("--field", "number:str:40", "--field", "status:enum:draft,sent,paid", "--field", "project_id:fk:projects"),
    *("--field", "amount:decimal:12,2", "--field", "issued_at:datetime"),
]
EVERY_TYPE = ["title:str:120", "body:text", "priority:int", "done:bool", "budget:decimal:8,0", "due_at:datetime"]


def _tree_state() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_dry_run_lists_what_it_would_write_and_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree_state()
    assert main([*INVOICES, "--dry-run"]) == 0
    out = capsys.readouterr().out
    for path in (
        "app/domains/invoices/models.py",
        "app/domains/invoices/service.py",
        "app/api/routes/invoices.py",
        "tests/api/test_invoices_api.py",
        "tests/domains/test_invoices_service.py",
    ):
        assert f"  {path} (" in out
    assert "app/models.py: from app.domains.invoices import models as _invoices  # noqa: F401" in out
    assert "app/api/controllers.py: InvoiceController, at the end of `controllers`" in out
    assert "tests/factories.py: class InvoiceFactory, def invoice_references (at its end)" in out
    assert "migrations/versions/<date>_<revision>_add_invoices.py" in out
    assert "would rewrite docs/openapi.json" in out
    assert _tree_state() == before
    assert not (PROJECT_ROOT / "app" / "domains" / "invoices").exists()


@pytest.mark.parametrize(
    ("owner", "fields"),
    [
        ("organization", INVOICES[3:]),
        (
            "user",
            [
                part
                for spec in [*EVERY_TYPE, "channel:enum:email,sms", "project_id:fk:projects"]
                for part in ("--field", spec)
            ],
        ),
    ],
)
def test_every_file_is_python_with_no_template_leftovers(owner: str, fields: list[str]) -> None:
    specs = [spec for spec in fields if spec != "--field" and spec not in {"--owned-by", "organization"}]
    result = plan(Domain.parse("line_items", None, owner, specs))
    assert refusals(result.domain, result) == []
    assert "app/domains/line_items/models.py" in result.files
    for path, text in [*result.files.items(), *result.appended.items()]:
        ast.parse(text, path)
        for leftover in ("${", "$model", "TODO", "FIXME", "XXX"):
            assert leftover not in text, (path, leftover)
    service = result.files["app/domains/line_items/service.py"]
    assert "class LineItemService(Service[LineItem]):" in service
    assert ("ensure_can_write_in_organization" in service) == (owner == "organization")
    routes = result.files["app/api/routes/line_items.py"]
    assert 'path = "/api/line-items"' in routes
    for operation in ("listLineItems", "createLineItem", "getLineItem", "updateLineItem", "deleteLineItem"):
        assert f'operation_id="{operation}"' in routes
    assert 'operation_id="createLineItem", requires=WRITE, idempotent=True' in routes
    assert "def test_a_create_retried_with_its_idempotency_key" in result.files["tests/api/test_line_items_api.py"]
    schemas = result.files["app/domains/line_items/schemas.py"]
    assert ": Annotated[str | None, NOT_NULL] = Field(default=None, min_length=1" in schemas
    assert "reject_null" not in schemas


def test_every_operation_and_the_tag_are_described() -> None:
    """Redocly and Spectral (`task lint`) want a description on every operation and tag: the
    handlers' docstrings and the routes module's."""
    result = plan(Domain.parse("line_items", None, "user", ["title:str"]))
    module = ast.parse(result.files["app/api/routes/line_items.py"])
    assert (ast.get_docstring(module) or "").startswith("Line items, each of one user")
    (controller,) = [node for node in module.body if isinstance(node, ast.ClassDef)]
    handlers = [node for node in controller.body if isinstance(node, ast.FunctionDef)]
    assert len(handlers) == 5
    assert all(ast.get_docstring(handler) for handler in handlers)


@pytest.mark.parametrize(
    ("owner", "reference", "owners_rule"),
    [
        ("organization", "project_id:fk:projects", True),  # a project of the same organization
        ("user", "project_id:fk:projects", False),  # one the caller sees: its owner plays no part
        ("user", None, False),
    ],
)
def test_reference_checks_and_tests_exist_only_where_they_have_something_to_check(
    owner: str, reference: str | None, owners_rule: bool
) -> None:
    """No test over an empty list (pytest would report a skip), no unused owner argument."""
    specs = ["title:str", *([reference] if reference else [])]
    files = plan(Domain.parse("line_items", None, owner, specs)).files
    service, api_tests = files["app/domains/line_items/service.py"], files["tests/api/test_line_items_api.py"]
    service_tests = files["tests/domains/test_line_items_service.py"]
    assert ("def _check_references" in service) == bool(reference)
    owner_column = "organization_id" if owner == "organization" else "owner_id"
    assert (f"def _check_references(self, values: Mapping[str, Any], {owner_column}: UUID)" in service) == owners_rule
    assert ("def test_a_reference_to_another" in api_tests) == bool(reference)
    assert ("def test_what_it_refers_to_is" in service_tests) == owners_rule
    assert 'parametrize("field", [])' not in api_tests + service_tests


@pytest.mark.parametrize(
    ("plural", "singular"),
    [("invoices", "invoice"), ("categories", "category"), ("boxes", "box"), ("line_items", "line_item"),
     ("addresses", "address"), ("status", None), ("news", "new")],
)  # fmt: skip
def test_singulars_of_regular_plurals(plural: str, singular: str | None) -> None:
    assert singular_of(plural) == singular


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["class"], "Python keyword"),
        (["select"], "reserved word in SQL"),
        (["list"], "builtin"),
        (["Invoices"], "lower-case"),
        (["status"], "--singular"),
        (["sheep", "--singular", "sheep"], "two names"),
        (["params"], "routes use"),
        (["invoices", "--field", "total:float"], "unknown type"),
        (["invoices", "--field", "order:str"], "reserved word in SQL"),
        (["invoices", "--field", "id:str"], "set by the generated code"),
        (["invoices", "--field", "model_name:str"], "pydantic"),
        (["invoices", "--field", "title:str:1"], "max length"),
        (["invoices", "--field", "title:str", "--field", "title:text"], "twice"),
        (["invoices", "--field", "total:decimal:4,4"], "scale below"),
        (["invoices", "--field", "state:enum:open"], "two values"),
        (["invoices", "--field", "state:enum:open,Closed"], "lower-case identifier"),
        (["invoices", "--field", "notes:text"], "str field"),
        (["invoices", "--field", "title:str", "--field", "project:fk:projects"], "_id"),
        (["invoices", "--field", "title:str", "--field", "org_id:fk:organizations"], "the owner"),
        (["invoices", "--field", "title:str", "--field", "thing_id:fk:things"], "no domain serves"),
        (["invoices", "--field", "title:str", "--field", "job_id:fk:jobs"], "no user or organization"),
    ],
)
def test_names_and_fields_it_refuses(arguments: list[str], reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*arguments, "--dry-run"]) == 2
    assert reason in capsys.readouterr().err


def test_it_refuses_a_domain_table_or_route_that_exists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["projects", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "app/domains/projects exists already" in err
    assert "a table named projects exists already" in err
    assert "a controller serves /api/projects already" in err
    with pytest.raises(SpecError, match="clashes"):
        Domain.parse("maps", None, "user", [])  # class Map, module `map`
    with pytest.raises(SpecError, match="user or organization"):
        Domain.parse("invoices", None, "team", [])
