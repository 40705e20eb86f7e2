"""What every client may rely on: problem details for errors, health probes, a valid OpenAPI."""

from collections.abc import Callable
from datetime import datetime
from typing import get_args

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from openapi_spec_validator import validate
from pydantic import BaseModel, Field

from app.api.dependencies import query_parameters
from app.api.main import create_app
from app.domains.base.lists import ListParams
from tests.helpers import served_operations, settings_for

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def test_malformed_json_and_wrong_shapes_are_400_problems(client: TestClient, as_user: Callable) -> None:
    _, headers = as_user()
    for body in (b"{not json", b"", b"[1, 2]", b"\xff\xfe", b'"just a string"'):
        response = client.patch("/api/users/me", headers={**headers, "content-type": "application/json"}, content=body)
        assert response.status_code == 400, body
        assert response.headers["content-type"].startswith("application/problem+json")
        assert set(response.json()) >= {"type", "title", "status", "detail"}


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    assert client.get("/nope").status_code == 404
    response = client.put("/health")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")


def test_liveness_and_readiness(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/ready").json() == {"status": "ready"}


def test_readiness_is_503_with_a_reason_when_the_database_is_unreachable() -> None:
    unreachable = settings_for("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    with TestClient(create_app(unreachable)) as client:
        assert client.get("/health").status_code == 200  # liveness does not touch the database
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["detail"] == "database unreachable: OperationalError"


def test_openapi_is_valid_and_every_operation_has_an_explicit_id(app: Litestar, client: TestClient) -> None:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    documented = {(method, path) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS}
    assert ("get", "/health") in documented
    assert documented == served_operations(app)  # every route the app serves, and nothing else
    operations = [op for path in spec["paths"].values() for op in path.values() if isinstance(op, dict)]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == len(documented)
    assert all(op_id[0].islower() and "_" not in op_id for op_id in ids), ids
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "name": "X-API-Key", "in": "header"}
    assert schemes["ClerkSession"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_every_operation_documents_its_problem_responses(client: TestClient) -> None:
    spec = client.get("/schema/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not path.startswith(("/api/", "/webhooks/")):
                continue
            statuses = set(operation["responses"])
            expected = {"400", "503"}
            if path.startswith("/api/"):
                expected |= {"401", "403"}
            if "{" in path:
                expected.add("404")
            assert expected <= statuses, (method, path, statuses)
            for status in expected:
                content = operation["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"]["$ref"].endswith("ProblemDetails")


def test_list_parameters_show_their_bounds_and_sortable_fields(client: TestClient) -> None:
    spec = client.get("/schema/openapi.json").json()
    parameters = {p["name"]: p["schema"] for p in spec["paths"]["/api/users"]["get"]["parameters"]}
    assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 100)
    assert parameters["order_by"]["enum"] == ["created_at", "email", "first_name", "last_name", "updated_at"]
    keys = {p["name"]: p["schema"] for p in spec["paths"]["/api/api-keys"]["get"]["parameters"]}
    assert keys["order_by"]["enum"] == ["created_at", "expires_at", "last_used_at", "name"]


def test_health_probes_and_the_webhook_need_no_api_credentials(client: TestClient) -> None:
    spec = client.get("/schema/openapi.json").json()
    for path in ("/health", "/health/ready", "/webhooks/clerk"):
        for operation in spec["paths"][path].values():
            assert operation["security"] == [{}], path
    assert "401" in spec["paths"]["/webhooks/clerk"]["post"]["responses"]  # a bad signature


def _constraints(field_schema: dict) -> dict:
    """A JSON schema's constraint keywords (an optional field's are on its non-null branch)."""
    branches = [field_schema, *(b for b in field_schema.get("anyOf", field_schema.get("oneOf", [])) if b != NULL)]
    return {key: value for branch in branches for key, value in branch.items() if key in CONSTRAINT_KEYWORDS}


NULL = {"type": "null"}
CONSTRAINT_KEYWORDS = {
    *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    *("minLength", "maxLength", "pattern", "minItems", "maxItems", "format"),
}


def test_every_constraint_of_list_params_reaches_every_list_operation(client: TestClient) -> None:
    """What ListParams validates (its own JSON schema, as pydantic states it) is what each list
    operation's query parameters document: read from both sides, so a new constraint is covered."""
    expected = {name: _constraints(schema) for name, schema in ListParams.model_json_schema()["properties"].items()}
    assert expected["limit"] == {"minimum": 1, "maximum": 100}  # the oracle reads real constraints
    spec = client.get("/schema/openapi.json").json()
    lists = [item["get"] for item in spec["paths"].values() if "get" in item and "parameters" in item["get"]]
    lists = [op for op in lists if {p["name"] for p in op["parameters"]} >= set(expected)]
    assert {op["operationId"] for op in lists} >= {"listUsers", "listApiKeys"}
    for operation in lists:
        documented = {p["name"]: _constraints(p["schema"]) for p in operation["parameters"]}
        for name, constraints in expected.items():
            assert documented[name] == constraints, (operation["operationId"], name)


class EveryConstraint(BaseModel):
    above: float = Field(default=1, gt=0, lt=10, multiple_of=0.5)
    code: str | None = Field(default=None, pattern=r"^[a-z]+$", min_length=2, max_length=8)
    when: datetime | None = None


def test_query_parameters_state_every_constraint_litestar_can_state() -> None:
    parameters = {parameter.name: parameter.annotation for parameter in query_parameters(EveryConstraint, {})}
    above, code, when = (get_args(parameters[name])[1] for name in ("above", "code", "when"))
    assert (above.gt, above.lt, above.multiple_of) == (0, 10, 0.5)
    assert (code.pattern, code.min_length, code.max_length) == ("^[a-z]+$", 2, 8)
    assert when.format == "date-time"
    assert get_args(parameters["when"])[0] == str | None  # passed on as text: the model parses it


def test_a_constraint_the_openapi_cannot_state_stops_the_app() -> None:
    class Unstateable(BaseModel):
        tags: set[str] = Field(default_factory=set)  # uniqueItems: no query parameter keyword for it

    with pytest.raises(TypeError, match=r"Unstateable\.tags: the constraint 'uniqueItems' cannot be stated"):
        query_parameters(Unstateable, {})
