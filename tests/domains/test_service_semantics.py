"""The base service's semantics, on both databases: what `create` hands its hooks, what an
integrity violation becomes, the one not-found type, and statement errors left unwrapped.

`Gadget` (tests/scratch.py) is a throwaway table whose service has README's hook, which takes the
owner from the actor: under `Actor.system()` that is no user.
"""

from collections.abc import Callable
from uuid import UUID

import pytest
from advanced_alchemy import exceptions as aa_exc
from sqlalchemy import exc as sa_exc

from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import ConflictError, DomainValidationError, NotFoundError
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.models import APIKey, User
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.database import Database
from tests.conftest import actor_of
from tests.scratch import Gadget, GadgetService, gadgets_table  # noqa: F401 (gadgets_table: a fixture)


@pytest.fixture
def member(make_user: Callable[..., User]) -> User:
    return make_user(role=Role.MEMBER)


@pytest.mark.usefixtures("gadgets_table")
def test_a_hook_that_leaves_a_required_field_null_is_a_validation_error_naming_it(
    open_uow: Callable[[Actor], UnitOfWork],
) -> None:
    """README's hook under the system actor (a flow, the CLI): no user, so no owner."""
    gadgets = open_uow(Actor.system()).service(GadgetService)
    with pytest.raises(DomainValidationError) as raised:
        gadgets.create({"name": "made by a flow"})
    assert not isinstance(raised.value, ConflictError)
    assert raised.value.extra["errors"] == [
        {"key": "owner_id", "message": "required: the row cannot be stored without it"}
    ]
    assert raised.value.detail == "owner_id must have a value"


@pytest.mark.usefixtures("gadgets_table")
def test_a_check_violation_is_a_validation_error_naming_the_check(
    open_uow: Callable[[Actor], UnitOfWork], member: User
) -> None:
    gadgets = open_uow(actor_of(member)).service(GadgetService)
    with pytest.raises(DomainValidationError) as raised:
        gadgets.create({"name": ""})
    assert raised.value.extra["errors"] == [
        {"key": "ck_scratch_gadgets_name_not_blank", "message": "the value breaks this check"}
    ]


@pytest.mark.usefixtures("gadgets_table")
def test_a_null_set_by_an_update_is_a_validation_error_too(
    open_uow: Callable[[Actor], UnitOfWork], member: User
) -> None:
    gadgets = open_uow(actor_of(member)).service(GadgetService)
    gadget = gadgets.create({"name": "mine"})
    with pytest.raises(DomainValidationError) as raised:
        gadgets.update({"name": None}, gadget.id)
    assert raised.value.extra["errors"][0]["key"] == "name"


def test_unique_and_foreign_key_violations_stay_conflicts(
    open_uow: Callable[[Actor], UnitOfWork], make_user: Callable[..., User]
) -> None:
    make_user(email="taken@example.com")
    users = open_uow(Actor.system()).service(UserService)
    with pytest.raises(ConflictError, match="a user with this e-mail already exists"):
        users.create({"email": "taken@example.com"})
    keys = open_uow(Actor.system()).service(APIKeyService)
    with pytest.raises(ConflictError, match="the change conflicts with an existing row") as raised:
        keys.create({"user_id": UUID(int=7), "name": "orphan", "prefix": "sk_orphan", "key_hash": "x", "scopes": []})
    assert not isinstance(raised.value, DomainValidationError)


@pytest.mark.usefixtures("gadgets_table")
def test_create_hands_its_hook_a_dict_for_a_table_instance_too(
    open_uow: Callable[[Actor], UnitOfWork], member: User
) -> None:
    gadgets = open_uow(actor_of(member)).service(GadgetService)
    created = gadgets.create(Gadget(name="from an instance"))
    assert GadgetService.received == [{"name": "from an instance"}]  # the fields set on it
    assert (created.name, created.owner_id) == ("from an instance", member.id)


def test_create_normalises_a_table_instance_as_it_does_a_dict(
    open_uow: Callable[[Actor], UnitOfWork], database: Database
) -> None:
    with open_uow(Actor.system()) as uow:
        created = uow.service(UserService).create(User(email="Bob@Example.COM"))
    with database.session() as session:
        assert session.get(User, created.id).email == "bob@example.com"


def test_every_not_found_is_the_domain_s_not_found(open_uow: Callable[[Actor], UnitOfWork], member: User) -> None:
    """advanced-alchemy raises its own NotFoundError from `get`, `get_one`, `update` and `delete`;
    the repository raises the domain's instead, so the adapters know one not-found type."""
    missing = UUID(int=1)
    keys = open_uow(actor_of(member)).service(APIKeyService)
    for lookup in (
        lambda: keys.get(missing),
        lambda: keys.get_one(APIKey.id == missing),
        lambda: keys.repository.get(missing),
        lambda: keys.update({"name": "x"}, missing),
        lambda: keys.delete(missing),
    ):
        with pytest.raises(NotFoundError, match="APIKey not found") as raised:
            lookup()
        assert not isinstance(raised.value, aa_exc.AdvancedAlchemyError)


def test_statement_errors_are_sqlalchemy_s_own_not_wrapped(
    open_uow: Callable[[Actor], UnitOfWork], member: User
) -> None:
    """`wrap_exceptions=False`: a table that is not there is SQLAlchemy's error, as the database
    said it (an OperationalError on SQLite, a ProgrammingError on PostgreSQL), not a RepositoryError."""
    gadgets = open_uow(actor_of(member)).service(GadgetService)  # its table is not created here
    with pytest.raises(sa_exc.DBAPIError) as raised:
        gadgets.get_many()
    assert not isinstance(raised.value, aa_exc.AdvancedAlchemyError)
    assert "scratch_gadgets" in str(raised.value.orig)
