"""What every client may rely on: problem details for errors, health probes, a valid OpenAPI."""

from collections.abc import Callable

from litestar.testing import TestClient
from openapi_spec_validator import validate

from app.api.main import create_app
from tests.helpers import settings_for


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


def test_openapi_is_valid_and_every_operation_has_an_explicit_id(client: TestClient) -> None:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    operations = [op for path in spec["paths"].values() for op in path.values() if isinstance(op, dict)]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == 13
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
