"""How errors leave the API, through a real app built from the project's pieces (routing decorators,
credential middleware, providers, problem handlers) serving `Gadget` (tests/scratch.py):

- a domain error's status is its nearest mapped kind; one with none is a logged 500, never a crash;
- a NOT NULL violation from a hook is a 422 naming the field, not a 409 "conflict";
- a statement SQLite cannot run (a missing table) is a 500 like any other bug, not a 503 outage.
"""

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import Controller, Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath
from litestar.testing import TestClient

from app.api.auth import CredentialMiddleware
from app.api.dependencies import UnitOfWorkDep, app_dependencies, service_dependencies
from app.api.problems import DOMAIN_ERROR_STATUS, exception_handlers
from app.api.route_decorators import get, post
from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import DomainError, NotFoundError, TooManyAttemptsError
from tests.scratch import GadgetService, gadgets_table  # noqa: F401 (gadgets_table: a fixture)


class UnmappedError(DomainError):
    """A domain's own error, derived from DomainError itself: no status says whose fault it is."""


class GadgetGoneError(NotFoundError):
    """Derived from a mapped kind: that kind's status."""


ERRORS: dict[str, DomainError] = {
    "base": DomainError("something the domain refused"),
    "unmapped": UnmappedError("a rule of the domain"),
    "subclass": GadgetGoneError("the gadget was recycled"),
    "mapped": TooManyAttemptsError(7),
}


class Gadgets(Controller):
    path = "/gadgets"
    dependencies = service_dependencies("gadgets", GadgetService)

    @get("/errors/{name:str}", operation_id="raiseError", public=True)
    def raise_error(self, name: FromPath[str]) -> None:
        raise ERRORS[name]

    @post("/as-system", operation_id="createGadgetAsSystem", admin=True, errors=(422,))
    def create_as_system(self, uow: UnitOfWorkDep) -> dict[str, Any]:
        """What README's hook does in a flow or the CLI: the system actor is no user, so no owner."""
        gadgets = uow.service(GadgetService, actor=Actor.system())
        return {"id": str(gadgets.create({"name": "made by a flow"}).id)}

    @get("/", operation_id="listGadgets", admin=True)
    def list_gadgets(self, gadgets: NamedDependency[GadgetService]) -> list[str]:
        return [gadget.name for gadget in gadgets.get_many()]


@pytest.fixture
def gadgets_client(container: Container) -> Iterator[TestClient]:
    app = Litestar(
        route_handlers=[Gadgets],
        dependencies=app_dependencies,
        middleware=[DefineMiddleware(CredentialMiddleware)],
        exception_handlers=exception_handlers,
        state=State({"container": container}),
    )
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin(as_user: Callable[..., tuple[Any, dict[str, str]]]) -> dict[str, str]:
    return as_user(role=Role.ADMIN)[1]


@pytest.mark.parametrize(
    ("name", "status", "detail"),
    [
        ("base", 500, "internal server error"),
        ("unmapped", 500, "internal server error"),
        ("subclass", 404, "the gadget was recycled"),
        ("mapped", 429, "too many failed attempts, retry later"),
    ],
)
def test_a_domain_error_takes_the_status_of_its_nearest_mapped_kind(
    gadgets_client: TestClient, caplog: pytest.LogCaptureFixture, name: str, status: int, detail: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="app.api.problems"):
        response = gadgets_client.get(f"/gadgets/errors/{name}")
    assert (response.status_code, response.json()["detail"]) == (status, detail)
    assert response.headers["content-type"].startswith("application/problem+json")
    unmapped = [record for record in caplog.records if record.getMessage().startswith("unmapped domain error")]
    if status == 500:  # the developer learns which error to map, with its traceback
        assert len(unmapped) == 1
        assert type(ERRORS[name]).__qualname__ in unmapped[0].getMessage()
        assert unmapped[0].exc_info is not None
    else:
        assert unmapped == []


def test_every_mapped_kind_is_a_client_error() -> None:
    """The fallback (500) is for what the domain did not classify; every kind it did is a 4xx."""
    assert all(400 <= status < 500 for status in DOMAIN_ERROR_STATUS.values())


@pytest.mark.usefixtures("gadgets_table")
def test_a_hook_that_leaves_a_required_field_null_is_a_422_naming_it(
    gadgets_client: TestClient, admin: dict[str, str]
) -> None:
    response = gadgets_client.post("/gadgets/as-system", headers=admin)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"] == [
        {"key": "owner_id", "message": "required: the row cannot be stored without it", "source": "body"}
    ]
    assert "conflict" not in body["detail"]


def test_a_statement_the_database_cannot_run_is_a_500_not_an_outage(
    gadgets_client: TestClient, admin: dict[str, str]
) -> None:
    """Its table is not created here: SQLite says OperationalError ("no such table"), PostgreSQL
    ProgrammingError. Neither is an outage to retry: no 503, no Retry-After."""
    response = gadgets_client.get("/gadgets", headers=admin)
    assert response.status_code == 500, response.text
    assert "retry-after" not in response.headers
    assert response.json()["detail"] == "internal server error"
