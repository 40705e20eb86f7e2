"""An actor-bound service applies the row policy to every path it inherits from advanced-alchemy.

A member's UserService must not read, count, change or delete another user through any of them,
and writes must not create rows the member could not see. Checked on both databases, then the
other user's row is read back through a fresh session to prove it did not change.
"""

from collections.abc import Callable

import pytest
from sqlalchemy import select

from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import NotFoundError, PermissionDeniedError
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.models import APIKey, User
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.database import Database
from tests.conftest import actor_of

NOT_FOUND = NotFoundError  # the only not-found type: advanced-alchemy's is never raised

# Each inherited read, and what it must answer for another user's row.
READS: dict[str, Callable[[UserService, User], object]] = {
    "get": lambda users, other: users.get(other.id),
    "get_one": lambda users, other: users.get_one(User.id == other.id),
    "get_one_or_none": lambda users, other: users.get_one_or_none(User.id == other.id),
    "get_many": lambda users, other: users.get_many(User.id == other.id),
    "get_many_and_count": lambda users, other: users.get_many_and_count(User.id == other.id),
    "count": lambda users, other: users.count(User.id == other.id),
    "exists": lambda users, other: users.exists(id=other.id),
}
EXPECTED_READS = {"get_one_or_none": None, "get_many": [], "get_many_and_count": ([], 0), "count": 0, "exists": False}

# Each inherited write, aimed at another user's row: refused (not found / not yours) or a no-op.
WRITES: dict[str, Callable[[UserService, User], object]] = {
    "update": lambda users, other: users.update({"first_name": "Mallory"}, other.id),
    "update (id in data)": lambda users, other: users.update({"id": other.id, "first_name": "Mallory"}),
    "update_many": lambda users, other: users.update_many([{"id": other.id, "first_name": "Mallory"}]),
    "upsert": lambda users, other: users.upsert({"id": other.id, "first_name": "Mallory"}),
    "upsert by match": lambda users, other: users.upsert(
        {"email": other.email, "first_name": "Mallory"}, match_fields=["email"]
    ),
    "get_or_upsert": lambda users, other: users.get_or_upsert(id=other.id, first_name="Mallory"),
    "get_and_update": lambda users, other: users.get_and_update(match_fields=["id"], id=other.id, first_name="M"),
    "delete": lambda users, other: users.delete(other.id),
    "delete_many": lambda users, other: users.delete_many([other.id]),
    "delete_where": lambda users, other: users.delete_where(User.id == other.id),
}
# Bulk deletes on keys (users refuse any delete but the system's): filtered, so a no-op.
NO_OP_WRITES: dict[str, Callable[[APIKeyService, APIKey], object]] = {
    "delete_many": lambda keys, other: keys.delete_many([other.id]),
    "delete_where": lambda keys, other: keys.delete_where(APIKey.id == other.id),
}


@pytest.fixture
def member_and_other(make_user: Callable[..., User]) -> tuple[User, User]:
    return make_user(first_name="Member"), make_user(first_name="Other")


def _unchanged(database: Database, other: User) -> bool:
    with database.session() as fresh:
        stored = fresh.get(User, other.id)
        return stored is not None and stored.first_name == "Other"


@pytest.mark.parametrize("path", READS)
def test_inherited_reads_are_filtered(open_uow: Callable[[Actor], UnitOfWork], member_and_other, path: str) -> None:
    member, other = member_and_other
    users = open_uow(actor_of(member)).service(UserService)
    if path in EXPECTED_READS:
        assert READS[path](users, other) == EXPECTED_READS[path]
    else:
        with pytest.raises(NOT_FOUND):
            READS[path](users, other)
    assert users.count() == 1  # itself
    assert users.get(member.id).id == member.id


@pytest.mark.parametrize("path", WRITES)
def test_inherited_writes_cannot_reach_another_row(
    open_uow: Callable[[Actor], UnitOfWork], database: Database, member_and_other, path: str
) -> None:
    member, other = member_and_other
    uow = open_uow(actor_of(member))
    with pytest.raises((NOT_FOUND, PermissionDeniedError)):
        WRITES[path](uow.service(UserService), other)
    uow.rollback()
    assert _unchanged(database, other)


@pytest.mark.parametrize("path", NO_OP_WRITES)
def test_inherited_bulk_deletes_skip_rows_the_actor_cannot_see(
    open_uow: Callable[[Actor], UnitOfWork],
    database: Database,
    member_and_other,
    make_api_key: Callable[..., str],
    path: str,
) -> None:
    member, other = member_and_other
    make_api_key(other)
    with database.session() as session:
        others_key = session.scalars(select(APIKey).where(APIKey.user_id == other.id)).one()
    uow = open_uow(actor_of(member))
    assert list(NO_OP_WRITES[path](uow.service(APIKeyService), others_key)) == []
    uow.commit()
    with database.session() as session:
        assert session.get(APIKey, others_key.id) is not None


# Each inherited write aimed at the actor's *own* row, at a field only admins or the system change.
OWN_ROW_ESCALATIONS: dict[str, Callable[[UnitOfWork, User, APIKey], object]] = {
    "update role": lambda uow, me, _: uow.service(UserService).update({"role": "admin"}, me.id),
    "upsert role": lambda uow, me, _: uow.service(UserService).upsert({"id": me.id, "role": "admin"}),
    "get_and_update active": lambda uow, me, _: uow.service(UserService).get_and_update(
        match_fields=["id"], id=me.id, is_active=True, clerk_id="user_someone_else"
    ),
    "update clerk link": lambda uow, me, _: uow.service(UserService).update({"clerk_id": "user_x"}, me.id),
    "hard delete itself": lambda uow, me, _: uow.service(UserService).delete(me.id),
    "widen a key": lambda uow, _, key: uow.service(APIKeyService).update({"scopes": ["users:write"]}, key.id),
    "extend a key": lambda uow, _, key: uow.service(APIKeyService).update({"expires_at": None}, key.id),
    "un-revoke a key": lambda uow, _, key: uow.service(APIKeyService).update({"revoked_at": None}, key.id),
}


@pytest.mark.parametrize("path", OWN_ROW_ESCALATIONS)
def test_inherited_writes_cannot_change_what_only_admins_change_on_ones_own_rows(
    open_uow: Callable[[Actor], UnitOfWork],
    database: Database,
    make_user: Callable[..., User],
    make_api_key: Callable[..., str],
    path: str,
) -> None:
    member = make_user(first_name="Member")
    make_api_key(member, scopes=["users:read"])
    with database.session() as session:
        key = session.scalars(select(APIKey).where(APIKey.user_id == member.id)).one()
    uow = open_uow(actor_of(member))
    with pytest.raises(PermissionDeniedError):
        OWN_ROW_ESCALATIONS[path](uow, member, key)
    uow.rollback()
    with database.session() as session:
        stored, stored_key = session.get(User, member.id), session.get(APIKey, key.id)
        assert (stored.role, stored.is_active, stored.clerk_id) == (Role.MEMBER, True, None)
        assert (stored_key.scopes, stored_key.revoked_at) == (["users:read"], None)


def test_creating_a_row_for_someone_else_is_refused(open_uow: Callable[[Actor], UnitOfWork], member_and_other) -> None:
    member, other = member_and_other
    api_keys = open_uow(actor_of(member)).service(APIKeyService)
    for create in (
        api_keys.create,
        lambda row: api_keys.create_many([row]),
        lambda row: api_keys.create_many_if_absent([row]),
    ):
        with pytest.raises(PermissionDeniedError):
            create({"user_id": other.id, "name": "planted", "prefix": "sk_planted", "key_hash": "x"})
    assert api_keys.uow.service(APIKeyService, actor=Actor.system()).count(APIKey.user_id == other.id) == 0


def test_an_admin_and_the_system_reach_every_row(
    open_uow: Callable[[Actor], UnitOfWork], make_user: Callable[..., User], member_and_other
) -> None:
    _, other = member_and_other
    admin = make_user(role=Role.ADMIN)
    for actor in (actor_of(admin), Actor.system()):
        users = open_uow(actor).service(UserService)
        assert users.get(other.id).id == other.id
        assert users.count() == 3


def test_the_system_actor_is_the_explicit_way_past_the_policy(
    open_uow: Callable[[Actor], UnitOfWork], member_and_other
) -> None:
    member, other = member_and_other
    uow = open_uow(actor_of(member))
    assert uow.service(UserService).get_one_or_none(User.id == other.id) is None
    assert uow.service(UserService, actor=Actor.system()).get(other.id).id == other.id
