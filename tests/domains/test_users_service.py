"""UserService on real databases: the one write path, partial updates, row policy, listing."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bootstrap import Container
from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import ConflictError, DomainValidationError, NotFoundError, PermissionDeniedError
from app.domains.base.lists import ListParams
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.models import APIKey, User
from app.domains.users.schemas import UserCreate, UserUpdate
from app.domains.users.service import UserService
from tests.conftest import actor_of

OpenUoW = Callable[[Actor], UnitOfWork]


@pytest.fixture
def users(open_uow: OpenUoW) -> UserService:
    """The users service as the system actor (past the row policy)."""
    return open_uow(Actor.system()).service(UserService)


def users_as(open_uow: OpenUoW, user: User) -> UserService:
    return open_uow(actor_of(user)).service(UserService)


def test_create_stores_a_lower_cased_email_with_a_time_ordered_id(users: UserService) -> None:
    first = users.create_user(UserCreate(email="Ada.Lovelace@Example.COM", first_name="Ada"))
    second = users.create_user(UserCreate(email="grace@example.com"))
    assert first.email == "ada.lovelace@example.com"
    assert first.role == Role.MEMBER
    assert first.is_active
    assert first.id.version == 7
    assert first.id < second.id
    assert first.created_at.tzinfo is not None


def test_duplicate_email_in_any_letter_case_is_a_conflict(users: UserService) -> None:
    users.create_user(UserCreate(email="dup@example.com"))
    with pytest.raises(ConflictError, match="a user with this e-mail already exists"):
        users.create_user(UserCreate(email="DUP@Example.com"))
    users.uow.rollback()  # the unit of work owns the transaction
    assert users.count() == 0


def test_duplicate_clerk_id_is_a_conflict_that_says_so(users: UserService) -> None:
    users.create_user(UserCreate(email="one@example.com", clerk_id="user_1"))
    with pytest.raises(ConflictError, match="a user with this Clerk id already exists"):
        users.create_user(UserCreate(email="two@example.com", clerk_id="user_1"))


def test_create_many_if_absent_normalises_and_skips_taken_emails(users: UserService, session: Session) -> None:
    users.create_user(UserCreate(email="taken@example.com"))
    created = users.create_many_if_absent(
        [
            UserCreate(email="Ada@Example.COM", first_name="Ada", role=Role.ADMIN),
            UserCreate(email="TAKEN@example.com"),
            UserCreate(email="grace@example.com", is_active=False),
        ]
    )
    users.uow.commit()
    stored = {user.email: user for user in session.scalars(select(User).where(User.id.in_(created)))}
    assert set(stored) == {"ada@example.com", "grace@example.com"}
    assert (stored["ada@example.com"].role, stored["ada@example.com"].first_name) == (Role.ADMIN, "Ada")
    assert (stored["grace@example.com"].role, stored["grace@example.com"].is_active) == (Role.MEMBER, False)
    assert all(user.id.version == 7 and user.created_at.tzinfo is not None for user in stored.values())
    assert users.count() == 3
    assert users.create_many_if_absent([]) == []


def test_only_admins_create_users_in_bulk(open_uow: OpenUoW, make_user: Callable[..., User]) -> None:
    with pytest.raises(PermissionDeniedError):
        users_as(open_uow, make_user()).create_many_if_absent([UserCreate(email="new@example.com")])


def test_only_admins_create_users(open_uow: OpenUoW, make_user: Callable[..., User]) -> None:
    with pytest.raises(PermissionDeniedError):
        users_as(open_uow, make_user()).create_user(UserCreate(email="new@example.com"))


def test_partial_update_keeps_id_created_at_and_untouched_fields(
    users: UserService, make_user: Callable[..., User], database
) -> None:
    user = make_user(first_name="Ada", last_name="Lovelace", image_url="https://img.example/a.png")
    before = (user.id, user.created_at, user.updated_at)

    users.update(UserUpdate(first_name="Augusta"), user.id)
    users.uow.commit()

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
    open_uow: OpenUoW, make_user: Callable[..., User]
) -> None:
    member = make_user()
    users = users_as(open_uow, member)
    assert users.change(member.id, UserUpdate(last_name="Hopper")).last_name == "Hopper"
    for change in (UserUpdate(role=Role.ADMIN), UserUpdate(is_active=False)):
        with pytest.raises(PermissionDeniedError):
            users.change(member.id, change)
    assert users.get(member.id).role == Role.MEMBER


def test_admin_changes_role_and_active_flag(open_uow: OpenUoW, make_user: Callable[..., User]) -> None:
    admin, member = make_user(role=Role.ADMIN), make_user()
    updated = users_as(open_uow, admin).change(member.id, UserUpdate(role=Role.ADMIN, is_active=False))
    assert (updated.role, updated.is_active) == (Role.ADMIN, False)


def test_update_to_a_taken_email_is_a_conflict_and_changes_nothing(
    open_uow: OpenUoW, make_user: Callable[..., User]
) -> None:
    taken, user = make_user(), make_user()
    email = user.email
    users = users_as(open_uow, user)
    with pytest.raises(ConflictError):
        users.change(user.id, UserUpdate(email=taken.email.upper()))
    users.uow.rollback()
    assert users.get(user.id).email == email


@pytest.mark.parametrize(
    ("viewer", "target", "visible"),
    [("admin", "other", True), ("member", "self", True), ("member", "other", False), ("admin", "self", True)],
)
def test_the_row_policy_decides_who_sees_whom(
    open_uow: OpenUoW, make_user: Callable[..., User], viewer: str, target: str, visible: bool
) -> None:
    me = make_user(role=Role.ADMIN if viewer == "admin" else Role.MEMBER)
    other = make_user()
    target_user = me if target == "self" else other
    users = users_as(open_uow, me)
    if visible:
        assert users.get(target_user.id).id == target_user.id
    else:
        with pytest.raises(NotFoundError):
            users.get(target_user.id)
        with pytest.raises(NotFoundError):
            users.change(target_user.id, UserUpdate(first_name="x"))
        with pytest.raises(NotFoundError):
            users.remove(target_user.id)


def test_listing_is_filtered_paginated_and_counted(open_uow: OpenUoW, make_user: Callable[..., User]) -> None:
    admin = make_user(role=Role.ADMIN)
    members = [make_user() for _ in range(4)]
    page = users_as(open_uow, admin).page(ListParams(limit=2, offset=0, order_by="created_at"))
    assert (len(page.items), page.total, page.total_is_exact) == (2, 5, True)
    page = users_as(open_uow, members[0]).page(ListParams())
    assert ([u.id for u in page.items], page.total) == ([members[0].id], 1)


def test_listing_searches_sorts_and_filters_by_creation_time(open_uow: OpenUoW, make_user: Callable[..., User]) -> None:
    admin = make_user(role=Role.ADMIN, email="admin@example.com", last_name="Zed")
    old = make_user(email="old@example.com", last_name="Alpha", created_at=datetime.now(UTC) - timedelta(days=10))
    make_user(email="grace.hopper@example.com", last_name="Hopper")
    users = users_as(open_uow, admin)

    page = users.page(ListParams(search="HOPP"))
    assert ([u.email for u in page.items], page.total) == (["grace.hopper@example.com"], 1)

    page = users.page(ListParams(order_by="last_name", sort_order="asc"))
    assert [u.last_name for u in page.items] == ["Alpha", "Hopper", "Zed"]

    cutoff = datetime.now(UTC) - timedelta(days=1)
    page = users.page(ListParams(created_before=cutoff))
    assert ([u.id for u in page.items], page.total) == ([old.id], 1)
    naive_cutoff = cutoff.replace(tzinfo=None)  # read as UTC
    assert users.page(ListParams(created_after=naive_cutoff)).total == 2


def test_search_wildcards_match_only_themselves(users: UserService, make_user: Callable[..., User]) -> None:
    make_user(last_name="100% sure"), make_user(last_name="a_b"), make_user(last_name="back\\slash")
    make_user(last_name="plain")
    for needle, expected in (("%", ["100% sure"]), ("_", ["a_b"]), ("\\", ["back\\slash"])):
        assert [u.last_name for u in users.page(ListParams(search=needle)).items] == expected, needle


def test_sorting_on_a_field_outside_the_whitelist_is_refused(users: UserService) -> None:
    with pytest.raises(DomainValidationError):
        users.page(ListParams(order_by="is_active"))


def test_totals_stop_counting_at_the_cap(users: UserService, monkeypatch: pytest.MonkeyPatch, make_user) -> None:
    monkeypatch.setattr("app.domains.base.service.COUNT_CAP", 3)
    for _ in range(5):
        make_user()
    page = users.page(ListParams(limit=2))
    assert (len(page.items), page.total, page.total_is_exact) == (2, 3, False)
    last = users.page(ListParams(limit=2, offset=4))  # the last page knows its total without counting
    assert (len(last.items), last.total, last.total_is_exact) == (1, 5, True)


def test_delete_leaves_a_tombstone_without_personal_data_and_revokes_keys(
    open_uow: OpenUoW, make_user: Callable[..., User], make_api_key: Callable[..., str], session: Session
) -> None:
    admin, member = make_user(role=Role.ADMIN), make_user(first_name="Gone")
    email = member.email
    make_api_key(member)
    users = users_as(open_uow, admin)
    users.remove(member.id)
    users.uow.commit()

    session.expire_all()
    tombstone = session.get(User, member.id)
    assert tombstone is not None
    assert tombstone.deleted_at is not None
    assert (tombstone.email, tombstone.first_name, tombstone.is_active) == (None, None, False)
    assert all(key.revoked_at is not None for key in session.scalars(select(APIKey).where(APIKey.user_id == member.id)))
    with pytest.raises(NotFoundError):
        users.get(member.id)
    users.create_user(UserCreate(email=email))  # the e-mail is free again


def test_members_cannot_delete_even_themselves(open_uow: OpenUoW, make_user: Callable[..., User]) -> None:
    member = make_user()
    with pytest.raises(PermissionDeniedError):
        users_as(open_uow, member).remove(member.id)


def test_a_unit_of_work_commits_once_on_success_and_rolls_back_on_error(container: Container, database) -> None:
    with container.unit_of_work(Actor.system()) as uow:
        user = uow.service(UserService).create_user(UserCreate(email="later@example.com"))
        with database.session() as other:
            assert other.get(User, user.id) is None  # flushed, not committed
    with database.session() as other:
        assert other.get(User, user.id) is not None

    created: list[User] = []

    def fail_after_a_write() -> None:
        with container.unit_of_work(Actor.system()) as uow:
            created.append(uow.service(UserService).create_user(UserCreate(email="doomed@example.com")))
            raise RuntimeError("the operation failed after its write")

    with pytest.raises(RuntimeError):
        fail_after_a_write()
    with database.session() as other:
        assert other.get(User, created[0].id) is None


def test_a_unit_of_work_without_an_actor_runs_no_query(container: Container) -> None:
    uow = container.unit_of_work()
    with pytest.raises(RuntimeError, match="no actor"):
        uow.service(UserService).count()
    uow.close()


def test_update_schema_refuses_null_for_required_fields_and_unknown_fields() -> None:
    for name in ("email", "role", "is_active"):
        with pytest.raises(ValidationError) as refused:
            UserUpdate.model_validate({name: None})
        assert [(error["loc"], error["msg"]) for error in refused.value.errors()] == [((name,), "cannot be null")]
    with pytest.raises(ValueError, match="Extra inputs"):
        UserUpdate.model_validate({"password": "x"})
