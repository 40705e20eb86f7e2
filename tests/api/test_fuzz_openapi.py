"""Property-based fuzzing of the whole OpenAPI document (the one served and committed) with
schemathesis, over HTTP against a live uvicorn, as a member and as an admin, with every check
schemathesis has but those argued away below: no 5xx, only documented statuses, headers and media
types, bodies that match, valid data accepted and invalid data refused, no unsupported method
answered. Bounded and seeded (derandomized), so CI runs the same cases."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks
from sqlalchemy import delete

from app.api.main import create_app
from app.api.openapi import openapi_document
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
schema = schemathesis.openapi.from_dict(openapi_document(_spec_app))
checks.load_all_checks()
# Schema-valid requests may still break a business rule the schema cannot state (an expiry that is
# already past, a project of another organization): the document's 422, "well-formed, but against a
# business rule". They are accepted answers to valid data; 400 (a request the schema should refuse)
# is not.
_acceptance = schema.config.checks.positive_data_acceptance
_acceptance.expected_statuses = [*_acceptance.expected_statuses, "422"]
# Checks that do not apply to a stateless run with one credential at a time, each with why.
NOT_APPLICABLE = {
    # Stateful checks: they compare a resource across calls (create, then delete, then get), which a
    # stateless case never makes; tests/api (users, keys, projects) assert those sequences directly.
    "use_after_free": "stateful: needs a delete then a get of the same resource",
    "ensure_resource_availability": "stateful: needs a create then a get of the same resource",
    # Access control across two users' resources: tests/api/test_tenant_idor.py and
    # test_authorization_edges.py assert it with real rows of two users and two tenants.
    "object_level_authorization": "needs two principals' resources in one case",
}
CHECKS = [check for check in checks.CHECKS.get_all() if check.__name__ not in NOT_APPLICABLE]
# `format: email` is the users domain's rule (its description says so): email-validator's, which
# refuses special-use domains (`.test`, `localhost`...) that hypothesis' addresses often use. Valid
# data, for this API, are addresses at ordinary domains; invalid ones still come from the schema.
schemathesis.openapi.format(
    "email", st.from_regex(r"[a-z0-9]{1,16}(\.[a-z0-9]{1,8})?@[a-z0-9]{1,16}\.(com|org|net|io|de)", fullmatch=True)
)
FUZZ = settings(max_examples=6, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


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
