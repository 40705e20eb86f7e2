"""UserService on real databases: the one write path, partial updates, scoping, listing."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domains.base.authorization import AuthMethod, AuthorizationContext, Role
from app.domains.base.exceptions import ConflictError, DomainValidationError, NotFoundError, PermissionDeniedError
from app.domains.base.filters import ListParams
from app.domains.users.authorization import ALL_SCOPES
from app.domains.users.models import APIKey, User
from app.domains.users.schemas import UserCreate, UserUpdate
from app.domains.users.service import UserService

SYSTEM = AuthorizationContext.system(ALL_SCOPES)


def actor(user: User) -> AuthorizationContext:
    return AuthorizationContext(user.id, Role(user.role), ALL_SCOPES, AuthMethod.API_KEY)


@pytest.fixture
def users(session: Session) -> UserService:
    return UserService(session, auto_commit=True)


def test_create_stores_a_lower_cased_email_with_a_time_ordered_id(users: UserService) -> None:
    first = users.create_user(SYSTEM, UserCreate(email="Ada.Lovelace@Example.COM", first_name="Ada"))
    second = users.create_user(SYSTEM, UserCreate(email="grace@example.com"))
    assert first.email == "ada.lovelace@example.com"
    assert first.role == Role.MEMBER
    assert first.is_active
    assert first.id.version == 7
    assert first.id < second.id
    assert first.created_at.tzinfo is not None


def test_duplicate_email_in_any_letter_case_is_a_conflict(users: UserService) -> None:
    users.create_user(SYSTEM, UserCreate(email="dup@example.com"))
    with pytest.raises(ConflictError, match="a user with this e-mail already exists"):
        users.create_user(SYSTEM, UserCreate(email="DUP@Example.com"))
    users.session.rollback()  # the caller owns the transaction
    assert users.count() == 1


def test_duplicate_clerk_id_is_a_conflict_that_says_so(users: UserService) -> None:
    users.create_user(SYSTEM, UserCreate(email="one@example.com", clerk_id="user_1"))
    with pytest.raises(ConflictError, match="a user with this Clerk id already exists"):
        users.create_user(SYSTEM, UserCreate(email="two@example.com", clerk_id="user_1"))


def test_only_admins_create_users(users: UserService, make_user: Callable[..., User]) -> None:
    member = make_user()
    with pytest.raises(PermissionDeniedError):
        users.create_user(actor(member), UserCreate(email="new@example.com"))


def test_partial_update_keeps_id_created_at_and_untouched_fields(
    users: UserService, make_user: Callable[..., User], database
) -> None:
    user = make_user(first_name="Ada", last_name="Lovelace", image_url="https://img.example/a.png")
    before = (user.id, user.created_at, user.updated_at)

    users.update(UserUpdate(first_name="Augusta"), user.id)

    with database.session() as fresh:  # read back through another session: what is stored
        stored = fresh.get(User, user.id)
        assert stored is not None
        assert (stored.id, stored.created_at) == before[:2]
        assert stored.first_name == "Augusta"
        assert (stored.last_name, stored.image_url, stored.email) == (
            "Lovelace",
            "https://img.example/a.png",
            user.email,
        )
        assert stored.updated_at > before[2]
        assert fresh.scalar(select(User.id).where(User.id == user.id)) == user.id


def test_update_of_a_missing_row_is_not_found(users: UserService) -> None:
    with pytest.raises(NotFoundError):
        users.update({"first_name": "x"}, User().id)


def test_member_edits_its_profile_but_not_its_role_or_active_flag(
    users: UserService, make_user: Callable[..., User]
) -> None:
    member = make_user()
    updated = users.update_visible(actor(member), member.id, UserUpdate(last_name="Hopper"))
    assert updated.last_name == "Hopper"
    for change in (UserUpdate(role=Role.ADMIN), UserUpdate(is_active=False)):
        with pytest.raises(PermissionDeniedError):
            users.update_visible(actor(member), member.id, change)
    assert users.get(member.id).role == Role.MEMBER


def test_admin_changes_role_and_active_flag(users: UserService, make_user: Callable[..., User]) -> None:
    admin, member = make_user(role=Role.ADMIN), make_user()
    updated = users.update_visible(actor(admin), member.id, UserUpdate(role=Role.ADMIN, is_active=False))
    assert (updated.role, updated.is_active) == (Role.ADMIN, False)


def test_update_to_a_taken_email_is_a_conflict_and_changes_nothing(
    users: UserService, make_user: Callable[..., User]
) -> None:
    taken, user = make_user(), make_user()
    email = user.email
    with pytest.raises(ConflictError):
        users.update_visible(actor(user), user.id, UserUpdate(email=taken.email.upper()))
    users.session.rollback()
    assert users.get(user.id).email == email


@pytest.mark.parametrize(
    ("viewer", "target", "visible"),
    [("admin", "other", True), ("member", "self", True), ("member", "other", False), ("admin", "self", True)],
)
def test_scope_strategy_decides_who_sees_whom(
    users: UserService, make_user: Callable[..., User], viewer: str, target: str, visible: bool
) -> None:
    me = make_user(role=Role.ADMIN if viewer == "admin" else Role.MEMBER)
    other = make_user()
    target_user = me if target == "self" else other
    if visible:
        assert users.get_visible(actor(me), target_user.id).id == target_user.id
    else:
        with pytest.raises(NotFoundError):
            users.get_visible(actor(me), target_user.id)
        with pytest.raises(NotFoundError):
            users.update_visible(actor(me), target_user.id, UserUpdate(first_name="x"))
        with pytest.raises(NotFoundError):
            users.delete_visible(actor(me), target_user.id)


def test_listing_is_scoped_paginated_and_counted(users: UserService, make_user: Callable[..., User]) -> None:
    admin = make_user(role=Role.ADMIN)
    members = [make_user() for _ in range(4)]
    items, total = users.list_visible(actor(admin), ListParams(limit=2, offset=0, order_by="created_at"))
    assert (len(items), total) == (2, 5)
    items, total = users.list_visible(actor(members[0]), ListParams())
    assert ([u.id for u in items], total) == ([members[0].id], 1)


def test_listing_searches_sorts_and_filters_by_creation_time(
    users: UserService, make_user: Callable[..., User]
) -> None:
    admin = make_user(role=Role.ADMIN, email="admin@example.com", last_name="Zed")
    old = make_user(email="old@example.com", last_name="Alpha", created_at=datetime.now(UTC) - timedelta(days=10))
    make_user(email="grace.hopper@example.com", last_name="Hopper")

    items, total = users.list_visible(actor(admin), ListParams(search="HOPP"))
    assert ([u.email for u in items], total) == (["grace.hopper@example.com"], 1)

    items, _ = users.list_visible(actor(admin), ListParams(order_by="last_name", sort_order="asc"))
    assert [u.last_name for u in items] == ["Alpha", "Hopper", "Zed"]

    cutoff = datetime.now(UTC) - timedelta(days=1)
    items, total = users.list_visible(actor(admin), ListParams(created_before=cutoff))
    assert ([u.id for u in items], total) == ([old.id], 1)
    naive_cutoff = cutoff.replace(tzinfo=None)  # read as UTC
    items, total = users.list_visible(actor(admin), ListParams(created_after=naive_cutoff))
    assert total == 2


def test_sorting_on_a_field_outside_the_whitelist_is_refused(
    users: UserService, make_user: Callable[..., User]
) -> None:
    admin = make_user(role=Role.ADMIN)
    with pytest.raises(DomainValidationError):
        users.list_visible(actor(admin), ListParams(order_by="is_active"))


def test_delete_leaves_a_tombstone_without_personal_data_and_revokes_keys(
    users: UserService, make_user: Callable[..., User], make_api_key: Callable[..., str], session: Session
) -> None:
    admin, member = make_user(role=Role.ADMIN), make_user(first_name="Gone")
    email = member.email
    make_api_key(member)
    users.delete_visible(actor(admin), member.id)

    session.expire_all()
    tombstone = session.get(User, member.id)
    assert tombstone is not None
    assert tombstone.deleted_at is not None
    assert (tombstone.email, tombstone.first_name, tombstone.is_active) == (None, None, False)
    assert all(key.revoked_at is not None for key in session.scalars(select(APIKey).where(APIKey.user_id == member.id)))
    with pytest.raises(NotFoundError):
        users.get_visible(actor(admin), member.id)
    # The e-mail is free again.
    users.create_user(actor(admin), UserCreate(email=email))


def test_members_cannot_delete_even_themselves(users: UserService, make_user: Callable[..., User]) -> None:
    member = make_user()
    with pytest.raises(PermissionDeniedError):
        users.delete_visible(actor(member), member.id)


def test_without_auto_commit_nothing_lands_until_commit(session: Session, database) -> None:
    users = UserService(session)
    user = users.create_user(SYSTEM, UserCreate(email="later@example.com"))
    with database.session() as other:
        assert other.get(User, user.id) is None
    users.commit()
    with database.session() as other:
        assert other.get(User, user.id) is not None


def test_update_schema_refuses_null_for_required_fields_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="email cannot be null"):
        UserUpdate.model_validate({"email": None})
    with pytest.raises(ValueError, match="Extra inputs"):
        UserUpdate.model_validate({"password": "x"})
