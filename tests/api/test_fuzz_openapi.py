"""Property-based fuzzing of the whole OpenAPI document with schemathesis, over HTTP against a live
uvicorn, as a member and as an admin: no 5xx, no response that violates the schema, no status
code the document does not list. Bounded and seeded (derandomized), so CI runs the same cases."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from sqlalchemy import delete

from app.api.main import create_app
from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.users.schemas import APIKeyCreate, UserCreate
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.config import Settings
from app.models import metadata
from tests.helpers import settings_for
from tests.test_concurrency import serving

# The document, from an app that is never served (building the schema touches no database).
_spec_app = create_app(settings_for(f"sqlite:///{Path(tempfile.gettempdir()) / 'openapi-spec.db'}"))
schema = schemathesis.openapi.from_dict(_spec_app.openapi_schema.to_schema())
# What the contract promises: no 5xx, only documented statuses and media types, bodies that match.
# (Not "valid data is accepted": a schema-valid request may still break a business rule, a 422.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
FUZZ = settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def credentials(container: Container) -> Iterator[dict[Role, dict[str, str]]]:
    """A member's and an admin's API key for the whole module; every row is removed after it."""
    headers = {}
    for role in (Role.MEMBER, Role.ADMIN):
        with container.unit_of_work(Actor.system()) as uow:
            user = uow.service(UserService).create_user(UserCreate(email=f"fuzz-{role}@example.com", role=role))
            owner = Actor.on_behalf_of(user.id, role)
            _, key = uow.service(APIKeyService, actor=owner).issue(APIKeyCreate(name="fuzz"))
        headers[role] = {"X-API-Key": key}
    yield headers
    with container.database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture(scope="module")
def live_api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(settings, tmp_path_factory.mktemp("fuzz")) as base_url:
        yield base_url


@schema.parametrize()
@FUZZ
def test_the_api_keeps_its_contract(
    case: schemathesis.Case, live_api: str, credentials: dict[Role, dict[str, str]]
) -> None:
    for role in (Role.MEMBER, Role.ADMIN):
        case.call_and_validate(base_url=live_api, headers=credentials[role], checks=CHECKS)
