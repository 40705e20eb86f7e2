"""Test harness: every test runs against real databases (SQLite always; PostgreSQL when
TEST_POSTGRES_URL is set), migrated with Alembic, and starts from empty tables."""

import os
from collections.abc import Callable, Iterator

import pytest
from alembic import command
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.bootstrap import Container, bootstrap
from app.domains.base.actors import Actor, AuthMethod, Role
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.organizations.models import Organization
from app.domains.projects.models import Project
from app.domains.users.models import User
from app.domains.users.schemas import APIKeyCreate
from app.domains.users.service import APIKeyService
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from app.infrastructure.hashing import APIKeyHasher
from app.models import metadata
from tests.clerk_helpers import ALLOWED_ORIGIN, ISSUER, SESSION_KEY, WEBHOOK_SECRET
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory
from tests.helpers import alembic_config, settings_for

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: runs against TEST_POSTGRES_URL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if POSTGRES_URL:
        return
    skip = pytest.mark.skip(reason="TEST_POSTGRES_URL is not set")
    for item in items:
        if "postgresql" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI the PostgreSQL half is not optional: no PostgreSQL test run means a red build (unless
    none was selected, e.g. `pytest -m docker`)."""
    selected = any("postgresql" in item.keywords for item in session.items)
    if os.environ.get("CI") and exitstatus == 0 and selected:
        ran = getattr(session.config, "_postgresql_tests_passed", 0)
        if not POSTGRES_URL or ran == 0:
            print("\nCI: the PostgreSQL run did not happen (set TEST_POSTGRES_URL)")
            session.exitstatus = 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call" and report.passed and "postgresql" in item.keywords:
        item.config._postgresql_tests_passed = getattr(item.config, "_postgresql_tests_passed", 0) + 1
    return report


def _reset_postgres(url: str) -> None:
    database = Database(settings_for(url))
    with database.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    database.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for an empty database of this backend, migrated to head."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    else:
        url = POSTGRES_URL
        _reset_postgres(url)
    settings = settings_for(url)
    database = Database(settings)
    with database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    database.dispose()
    return settings


@pytest.fixture(scope="session")
def container(settings: Settings) -> Iterator[Container]:
    """The process's dependencies, built once per backend as the app, the CLI and flows build them."""
    container = bootstrap(settings)
    yield container
    container.dispose()


@pytest.fixture(scope="session")
def database(container: Container) -> Database:
    return container.database


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test that uses a database starts from empty tables (and leaves them empty)."""
    yield
    if "database" in request.fixturenames:
        database: Database = request.getfixturevalue("database")
        with database.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as session:
        yield session


@pytest.fixture(scope="session")
def hasher(container: Container) -> APIKeyHasher:
    return container.hasher


def actor_of(user: User, permissions: frozenset[str] | None = None, method: AuthMethod = AuthMethod.API_KEY) -> Actor:
    """The actor a stored user authenticates as (every permission unless narrowed)."""
    return Actor(user.id, Role(user.role), Actor.system().permissions if permissions is None else permissions, method)


@pytest.fixture
def open_uow(container: Container) -> Iterator[Callable[[Actor], UnitOfWork]]:
    """Open a real unit of work for an actor (closed, uncommitted, at the end of the test)."""
    opened: list[UnitOfWork] = []

    def open_(actor: Actor) -> UnitOfWork:
        opened.append(container.unit_of_work(actor))
        return opened[-1]

    yield open_
    for uow in opened:
        uow.close()


@pytest.fixture
def make_user(session: Session) -> Callable[..., User]:
    def make(**fields: object) -> User:
        user = UserFactory.build(**fields)
        session.add(user)
        session.commit()
        return user

    return make


@pytest.fixture
def make_api_key(container: Container) -> Callable[..., str]:
    """Mint a key for a user directly (no login dance); returns the full key."""

    def make(
        user: User, scopes: list[str] | None = None, *, organization: Organization | None = None, **fields: object
    ) -> str:
        """`organization`: bound to it (as if created while it was active)."""
        actor = actor_of(user, method=AuthMethod.SYSTEM)
        if organization is not None:
            actor = actor.in_organization(organization.id, None)
        with container.unit_of_work(actor) as uow:
            _, key = uow.service(APIKeyService).issue(APIKeyCreate(name="test key", scopes=scopes, **fields))
        return key

    return make


@pytest.fixture(scope="session")
def app(container: Container) -> Litestar:
    return create_app(container=container)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def clerk_app(settings: Settings) -> Litestar:
    """The app with Clerk configured: session tokens minted with `SESSION_KEY`, webhooks signed
    with `WEBHOOK_SECRET` (its own container: the verifier and the secret are the container's)."""
    clerk = {
        "clerk_issuer": ISSUER,
        "clerk_jwt_key": SESSION_KEY.public_pem,
        "clerk_authorized_parties": [ALLOWED_ORIGIN],
        "clerk_webhook_signing_secret": WEBHOOK_SECRET,
    }
    return create_app(settings_for(settings.database_url, **clerk))


@pytest.fixture
def clerk_client(clerk_app: Litestar, database: Database) -> Iterator[TestClient]:
    with TestClient(clerk_app) as client:
        yield client


@pytest.fixture
def as_user(make_user: Callable[..., User], make_api_key: Callable[..., str]) -> Callable[..., tuple[User, dict]]:
    """A stored user and the headers that authenticate as it."""

    def make(role: Role = Role.MEMBER, scopes: list[str] | None = None, **fields: object) -> tuple[User, dict]:
        user = make_user(role=role, **fields)
        return user, {"X-API-Key": make_api_key(user, scopes)}

    return make


@pytest.fixture
def make_organization(session: Session) -> Callable[..., Organization]:
    def make(**fields: object) -> Organization:
        organization = OrganizationFactory.build(**fields)
        session.add(organization)
        session.commit()
        return organization

    return make


@pytest.fixture
def make_membership(session: Session) -> Callable[..., None]:
    """`make_membership(organization, user, role="admin")`: a live membership."""

    def make(organization: Organization, user: User, role: str = "member", **fields: object) -> None:
        session.add(MembershipFactory.build(organization_id=organization.id, user_id=user.id, role=role, **fields))
        session.commit()

    return make


@pytest.fixture
def make_project(session: Session) -> Callable[..., Project]:
    def make(organization: Organization, **fields: object) -> Project:
        project = ProjectFactory.build(organization_id=organization.id, **fields)
        session.add(project)
        session.commit()
        return project

    return make


@pytest.fixture
def as_member(
    make_user: Callable[..., User], make_membership: Callable[..., None], make_api_key: Callable[..., str]
) -> Callable[..., tuple[User, dict]]:
    """A stored user, member of `organization` with `role`, and the headers of a key bound to it."""

    def make(organization: Organization, role: str = "member", scopes: list[str] | None = None) -> tuple[User, dict]:
        user = make_user()
        make_membership(organization, user, role)
        return user, {"X-API-Key": make_api_key(user, scopes, organization=organization)}

    return make
