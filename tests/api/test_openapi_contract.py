"""The OpenAPI document is a contract a client author can trust: one test per class of defect a
generated client would inherit. Each reads the whole document (or the whole code), so a new
domain's routes are covered without a line here."""

import ast
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import jsonschema
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from pydantic import TypeAdapter, ValidationError
from sqlmodel import Field

from app.api.openapi import (
    DECIMAL_PATTERN,
    HTTP_METHODS,
    NO_NUL_PATTERN,
    ExactSchema,
    handler_function,
    openapi_document,
    summary_of,
)
from app.api.openapi_file import OPENAPI_FILE, check, current_document, render
from app.api.problems import PROBLEM_REASONS
from app.domains.base.permissions import permissions
from app.domains.base.schemas import NOT_NULL, InputSchema
from app.domains.jobs.models import JobStatus
from app.infrastructure.config import PROJECT_ROOT

REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def document(app: Litestar) -> dict[str, Any]:
    return openapi_document(app)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def _component(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = schema["$ref"].removeprefix(REF)
    return name, document["components"]["schemas"][name]


def _request_components(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for _, _, operation in _operations(document):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            if "$ref" in media["schema"]:
                name, schema = _component(document, media["schema"])
                found[name] = schema
    return found


def _response_components(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for _, _, operation in _operations(document):
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                if status.startswith("2") and "$ref" in media["schema"]:
                    name, schema = _component(document, media["schema"])
                    found[name] = schema
    return found


def _allows_null(schema: dict[str, Any]) -> bool:
    return any(branch.get("type") == "null" for branch in [schema, *schema.get("anyOf", [])])


def _request_types(app: Litestar) -> dict[str, type]:
    """Each request body's type, by its component's name (the class name)."""
    types = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None and handler.resolve_include_in_schema():
                types[data.annotation.__name__] = data.annotation
    return types


def test_request_bodies_refuse_unknown_fields_as_the_server_does(document: dict[str, Any]) -> None:
    requests = _request_components(document)
    assert {"UserCreate", "UserUpdate", "APIKeyCreate", "ProjectCreate", "ProjectUpdate"} <= set(requests)
    for name, schema in requests.items():
        assert schema.get("additionalProperties") is False, name


def test_a_request_field_is_nullable_exactly_when_validation_accepts_null(
    app: Litestar, document: dict[str, Any]
) -> None:
    """`{"email": null}` on PATCH is refused, so no generated client may compile it."""
    types = _request_types(app)
    checked = 0
    for name, schema in _request_components(document).items():
        for field, field_schema in schema["properties"].items():
            try:
                TypeAdapter(types[name]).validate_python({field: None})
                refused = False
            except ValidationError as error:
                refused = any(item["loc"][:1] == (field,) for item in error.errors())
            assert _allows_null(field_schema) is not refused, (name, field)
            checked += 1
    assert checked > 20
    assert not _allows_null(document["components"]["schemas"]["UserUpdate"]["properties"]["email"])
    assert _allows_null(document["components"]["schemas"]["UserUpdate"]["properties"]["first_name"])


def _request_schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every schema a request body is made of: its own, and the components it reaches."""
    schemas = [
        media["schema"]
        for _, _, operation in _operations(document)
        for media in operation.get("requestBody", {}).get("content", {}).values()
    ]
    seen: set[str] = set()
    pending = list(schemas)
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF) and ref not in seen:
                seen.add(ref)
                schemas.append(document["components"]["schemas"][ref.removeprefix(REF)])
                pending.append(schemas[-1])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return schemas


def test_no_request_field_has_a_default_a_typescript_client_would_have_to_send(
    app: Litestar, document: dict[str, Any]
) -> None:
    """openapi-typescript (default options) makes a component's property with a `default` required,
    so `{name: "x"}` would not compile as a ProjectCreate: a request field states its default in its
    description, and a field with a default is optional."""
    checked = 0
    for schema in _request_schemas(document):
        for field, field_schema in schema.get("properties", {}).items():
            assert "default" not in field_schema, (schema.get("title"), field)
            checked += 1
    assert checked > 20
    types = _request_types(app)
    for name, schema in _request_components(document).items():
        for field, info in types[name].model_fields.items():
            assert (field in schema.get("required", [])) is info.is_required(), (name, field)
            if not info.is_required() and info.default_factory is None and info.default is not None:
                value = info.default.value if isinstance(info.default, Enum) else info.default
                stated = value if isinstance(value, str) else json.dumps(value)
                assert f"Default: `{stated}`." in schema["properties"][field]["description"], (name, field)
    user_create = document["components"]["schemas"]["UserCreate"]
    assert user_create["required"] == ["email"]
    assert user_create["properties"]["role"]["description"] == "Default: `member`."
    image_url = user_create["properties"]["image_url"]["anyOf"][0]
    assert image_url["allOf"] == [{"pattern": "^https?://[^/\\s]+"}]
    assert image_url["pattern"] == NO_NUL_PATTERN


def test_every_request_string_states_that_nul_is_refused(document: dict[str, Any]) -> None:
    """Every input schema refuses NUL in its strings (PostgreSQL cannot store it): a generator that
    reads the document must not send one and expect a 2xx (schemathesis did)."""
    strings = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            parsed = "enum" in node or "const" in node or node.get("format") in {"uuid", "date-time"}
            if node.get("type") == "string" and not parsed:  # a value stored as text
                strings.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(_request_components(document))
    assert len(strings) > 10
    assert all(string.get("pattern") == NO_NUL_PATTERN for string in strings), strings
    assert re.fullmatch(NO_NUL_PATTERN, "Apollo é")
    assert not re.fullmatch(NO_NUL_PATTERN, "Apo\x00llo")


def test_every_component_is_titled_by_its_name(document: dict[str, Any]) -> None:
    """openapi-python-client names a model by its schema's title: when every page was titled "Page",
    it merged them into one model and dropped the list operations' responses."""
    schemas = document["components"]["schemas"]
    assert {"UserPublicPage", "ProjectPublicPage", "APIKeyPublicPage"} <= set(schemas)
    assert {name: schema.get("title") for name, schema in schemas.items()} == {name: name for name in schemas}


def test_every_response_field_is_required_and_nullable_where_it_may_be_null(document: dict[str, Any]) -> None:
    responses = _response_components(document)
    assert {"UserPublic", "UserPublicPage", "APIKeyCreated", "JobPublic", "ProjectPublicPage"} <= set(responses)
    for name, schema in responses.items():
        assert set(schema.get("required", [])) == set(schema["properties"]), name
    user = document["components"]["schemas"]["UserPublic"]["properties"]
    assert _allows_null(user["first_name"])
    assert not _allows_null(user["role"])


def test_scopes_are_the_registered_permissions(document: dict[str, Any]) -> None:
    registered = sorted(permissions.all())
    schemas = document["components"]["schemas"]
    assert schemas["APIKeyPublic"]["properties"]["scopes"]["items"]["enum"] == registered
    assert schemas["APIKeyCreate"]["properties"]["scopes"]["anyOf"][0]["items"]["enum"] == registered


def test_component_names_are_class_names_never_module_paths(document: dict[str, Any]) -> None:
    names = set(document["components"]["schemas"])
    assert {"UserPublicPage", "ProjectPublicPage", "ProblemDetails", "FieldError"} <= names
    assert [name for name in names if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name)] == []


def test_every_operation_has_its_summary_and_a_description_with_who_may_call_it(
    app: Litestar, document: dict[str, Any]
) -> None:
    handlers = {
        handler.operation_id: handler for route in app.routes for handler in getattr(route, "route_handlers", [])
    }
    for path, _, operation in _operations(document):
        operation_id = operation["operationId"]
        assert operation["summary"] == summary_of(operation_id), operation_id
        docstring = handler_function(handlers[operation_id]).__doc__
        assert docstring, f"{operation_id}: its handler needs a docstring (the operation's description)"
        assert " ".join(operation["description"].split()).startswith(" ".join(docstring.split())), operation_id
        if path.startswith("/api/"):
            assert re.search(r"Requires the permission `\w+:\w+`", operation["description"]), operation_id
    create_user = document["paths"]["/api/users"]["post"]
    assert create_user["summary"] == "Create user"
    assert "Requires the permission `users:write` and the admin role." in create_user["description"]
    assert document["paths"]["/api/users/me"]["get"]["summary"] == "Get current user"


def test_the_document_describes_itself(document: dict[str, Any]) -> None:
    info = document["info"]
    assert info["contact"]
    assert info["license"]
    assert "10 000" in info["description"]
    assert "405" in info["description"]
    assert document["servers"] == [{"url": "/"}]
    tags = {tag["name"]: tag["description"] for tag in document["tags"]}
    used = {tag for _, _, operation in _operations(document) for tag in operation["tags"]}
    assert set(tags) == used
    assert all(description and description != name for name, description in tags.items())
    parameters = {p["name"]: p for p in document["paths"]["/api/users"]["get"]["parameters"]}
    assert parameters["sort_order"]["description"]
    total = document["components"]["schemas"]["UserPublicPage"]["properties"]["total"]["description"]
    assert "10000" in total


def test_every_response_states_its_headers(document: dict[str, Any]) -> None:
    headers = document["components"]["headers"]
    for path, method, operation in _operations(document):
        assert any(p["name"] == "X-Request-ID" and p["in"] == "header" for p in operation["parameters"]), path
        for status, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"], (method, path, status)
            if status == "401":
                assert "WWW-Authenticate" in response["headers"]
            if status in {"429", "503"}:
                assert "Retry-After" in response["headers"]
    assert headers["X-Request-ID"]["required"] is True
    assert "503" in document["paths"]["/health/ready"]["get"]["responses"]


def test_no_example_is_generated_and_every_example_is_valid(document: dict[str, Any]) -> None:
    """Litestar's generated examples were random (`"status": 2562`); any example left is written by
    hand and must validate against its own schema."""
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("examples"), list) and "type" in node:
                found.extend((node, example) for example in node["examples"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert found, "ProblemDetails carries a real example"
    for schema, example in found:  # refs (#/components/...) resolve against the document's components
        jsonschema.validate(example, {**schema, "components": document["components"]})


def _emitted_reasons() -> set[str]:
    """Every literal `reason` the code raises: `reason="..."` keywords, `...["reason"] = "..."`
    assignments, and the first argument of the token and webhook verdicts (TokenRejected,
    WebhookRejected)."""
    reasons = set()
    for path in (PROJECT_ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and getattr(target.slice, "value", None) == "reason":
                        reasons.add(node.value.value)
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "reason" and isinstance(keyword.value, ast.Constant):
                    reasons.add(keyword.value.value)
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in {"TokenRejected", "WebhookRejected"} and node.args and isinstance(node.args[0], ast.Constant):
                reasons.add(node.args[0].value)
    return reasons


def test_every_reason_the_app_sends_is_in_the_documented_enum(document: dict[str, Any]) -> None:
    emitted = _emitted_reasons()
    oracle = {"missing", "csrf", "expired", "organization_role", "missing_header", "idempotency_key_reused"}
    assert oracle <= emitted  # the oracle reads each way a reason is written
    emitted |= {status.value for status in JobStatus if status is not JobStatus.SUCCEEDED}  # getJobResult's 409
    assert sorted(emitted - set(PROBLEM_REASONS)) == []
    problem = document["components"]["schemas"]["ProblemDetails"]
    assert problem["properties"]["reason"]["enum"] == list(PROBLEM_REASONS)
    assert problem["properties"]["type"]["format"] == "uri"
    assert {"required_permission", "retry_after"} <= set(problem["properties"])
    field_error = document["components"]["schemas"]["FieldError"]
    assert field_error["required"] == ["key", "message", "source"]


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        ("/api/users/me", {"email": None}, "email"),
        ("/api/users/me", {"is_active": None}, "is_active"),
        ("/api/users/me", {"status": None}, "status"),
        ("/api/users/me", {"image_url": "javascript:alert(1)"}, "image_url"),
    ],
)
def test_every_field_error_has_a_key_a_plain_message_and_a_source(
    client: TestClient, as_user: Callable, path: str, body: dict[str, Any], key: str
) -> None:
    _, headers = as_user()
    response = client.patch(path, headers=headers, json=body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(error["key"], error["source"]) for error in errors] == [(key, "body")]
    assert not errors[0]["message"].startswith("Value error")
    assert set(errors[0]) == {"key", "message", "source"}


def test_errors_of_the_whole_body_and_of_query_parameters_say_where(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    body = client.patch("/api/users/me", headers={**headers, "content-type": "application/json"}, content=b"[1]")
    for error in body.json().get("errors", []):
        assert set(error) == {"key", "message", "source"}
    query = client.get("/api/users", headers=headers, params={"limit": "0"}).json()
    assert [(error["key"], error["source"]) for error in query["errors"]] == [("limit", "query")]


def test_options_allows_every_method_of_the_path(app: Litestar, client: TestClient, document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{\w+\}", "00000000-0000-0000-0000-000000000000", path)
        response = client.options(concrete)
        assert response.status_code == 204, path
        documented = {method.upper() for method in item if method in HTTP_METHODS}
        assert set(response.headers["allow"].split(", ")) == documented | {"OPTIONS"}, path
    assert client.options("/api/users").headers["allow"] == "GET, OPTIONS, POST"


def test_the_committed_document_is_the_codes_and_round_trips() -> None:
    """docs/openapi.json is what `task openapi` writes from the code now (CI also runs the check)."""
    difference = check(OPENAPI_FILE)
    assert difference == [], "docs/openapi.json is stale: run `uv run task openapi`\n" + "\n".join(difference[:40])
    document = current_document()
    assert json.loads(render(document)) == document
    assert render(document) == render(json.loads(render(document)))  # stable: sorted keys, same bytes


class AmountChange(InputSchema):
    amount: Annotated[Decimal | None, NOT_NULL] = Field(default=None, max_digits=12, decimal_places=2)


def test_not_null_drops_the_null_branch_of_a_type_that_has_several() -> None:
    """A Decimal reads a number or a string: NOT_NULL keeps both and documents no `null` (a generated
    domain's decimal fields; the kit's own NOT_NULL fields have one branch)."""
    schema = TypeAdapter(AmountChange).json_schema(schema_generator=ExactSchema)["properties"]["amount"]
    assert [branch["type"] for branch in schema["anyOf"]] == ["number", "string"]
    as_string = schema["anyOf"][1]  # a decimal's digits, and NUL refused like every request string
    assert (as_string["allOf"], as_string["pattern"]) == ([{"pattern": DECIMAL_PATTERN}], NO_NUL_PATTERN)
    assert "default" not in schema
    with pytest.raises(ValidationError, match="cannot be null"):
        AmountChange.model_validate({"amount": None})
