"""API keys: issuing, authenticating (expiry, revocation, wrong secret, unknown prefix), caching."""

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session
from uuid_utils.compat import uuid7 as generate_uuid

from app.domains.base.actors import Actor, AuthMethod, Role
from app.domains.base.exceptions import ConflictError, DomainValidationError, NotFoundError, PermissionDeniedError
from app.domains.base.lists import ListParams
from app.domains.base.permissions import permissions
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.api_keys import api_key_prefix, generate_api_key, secret_check
from app.domains.users.exceptions import InvalidAPIKeyError
from app.domains.users.models import APIKey, User
from app.domains.users.permissions import UserPermission
from app.domains.users.schemas import APIKeyCreate
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.attempts import AttemptLimiter
from app.infrastructure.hashing import APIKeyHasher
from tests.conftest import actor_of
from tests.helpers import CHEAP_ARGON2

OpenUoW = Callable[[Actor], UnitOfWork]


@pytest.fixture
def keys_for(open_uow: OpenUoW) -> Callable[..., APIKeyService]:
    """The API-key service acting as a user (or as any actor); each write commits, as a request would."""

    def build(who: User | Actor, scopes: frozenset[str] | None = None) -> APIKeyService:
        actor = who if isinstance(who, Actor) else actor_of(who, scopes)
        return open_uow(actor).service(APIKeyService)

    return build


@pytest.fixture
def authenticate(open_uow: OpenUoW) -> Callable[[str], Actor]:
    """Authenticate a key in its own unit of work, as a request does."""

    def run(key: str) -> Actor:
        uow = open_uow(Actor.anonymous())
        actor = uow.service(APIKeyService).authenticate(key)
        uow.commit()
        return actor

    return run


def test_generated_keys_are_recognisable_and_unique() -> None:
    keys = {generate_api_key().key for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert key.startswith("sk_")
        assert api_key_prefix(key) == key[:19]
    assert api_key_prefix("sk_short") is None
    assert api_key_prefix("") is None


def test_issue_stores_only_a_hash_and_returns_the_key_once(
    keys_for: Callable, authenticate: Callable, make_user: Callable[..., User]
) -> None:
    user = make_user()
    api_keys = keys_for(user)
    row, key = api_keys.issue(APIKeyCreate(name="ci"))
    api_keys.uow.commit()
    assert key.startswith(row.prefix + "_")
    assert key not in row.key_hash
    assert row.key_hash.startswith("$argon2id$")
    assert sorted(row.scopes) == sorted(permissions.all())
    context = authenticate(key)
    assert (context.user_id, context.role, context.method, context.api_key_id) == (
        user.id,
        Role.MEMBER,
        AuthMethod.API_KEY,
        row.id,
    )


def test_a_key_cannot_grant_more_than_its_creator_holds(keys_for: Callable, make_user: Callable[..., User]) -> None:
    held = frozenset({UserPermission.USERS_READ, UserPermission.API_KEYS_WRITE})
    api_keys = keys_for(make_user(), held)
    with pytest.raises(PermissionDeniedError, match="users:write"):
        api_keys.issue(APIKeyCreate(name="x", scopes=[UserPermission.USERS_WRITE]))
    row, _ = api_keys.issue(APIKeyCreate(name="x"))
    assert sorted(row.scopes) == sorted(held)


def test_scopes_must_be_registered_permissions() -> None:
    with pytest.raises(ValueError, match="unknown permissions: nothing:fly"):
        APIKeyCreate(name="x", scopes=["users:read", "nothing:fly"])


def test_expiry_in_the_past_is_refused(keys_for: Callable, make_user: Callable[..., User]) -> None:
    with pytest.raises(DomainValidationError):
        keys_for(make_user()).issue(APIKeyCreate(name="x", expires_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_the_system_actor_cannot_own_keys(keys_for: Callable) -> None:
    with pytest.raises(PermissionDeniedError):
        keys_for(Actor.system()).issue(APIKeyCreate(name="x"))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"), id="wrong-secret"),
        pytest.param(lambda key: "sk_0000000000000000_" + key[20:], id="unknown-prefix"),
        pytest.param(lambda key: key[:-2], id="malformed"),
        pytest.param(lambda key: "", id="empty"),
        pytest.param(lambda key: key.upper(), id="upper-cased"),
    ],
)
def test_bad_keys_are_refused(
    keys_for: Callable, authenticate: Callable, make_user: Callable[..., User], tamper: Callable
) -> None:
    api_keys = keys_for(make_user())
    _, key = api_keys.issue(APIKeyCreate(name="x"))
    api_keys.uow.commit()
    authenticate(key)  # the genuine key works, and is now remembered
    with pytest.raises(InvalidAPIKeyError):
        authenticate(tamper(key))


def test_expired_key_is_refused(keys_for: Callable, authenticate: Callable, make_user: Callable[..., User]) -> None:
    api_keys = keys_for(make_user())
    row, key = api_keys.issue(APIKeyCreate(name="x", expires_at=datetime.now(UTC) + timedelta(hours=1)))
    api_keys.uow.commit()
    authenticate(key)
    with pytest.raises(PermissionDeniedError):  # its owner cannot move the expiry
        api_keys.update({"expires_at": datetime.now(UTC) + timedelta(days=365)}, row.id)
    system_keys = keys_for(Actor.system())  # the hour has passed
    system_keys.update({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, row.id)
    system_keys.uow.commit()
    with pytest.raises(InvalidAPIKeyError, match="expired"):
        authenticate(key)


def test_revocation_applies_to_the_very_next_check(
    keys_for: Callable, authenticate: Callable, make_user: Callable[..., User]
) -> None:
    api_keys = keys_for(make_user())
    row, key = api_keys.issue(APIKeyCreate(name="x"))
    api_keys.uow.commit()
    authenticate(key)
    revoked = api_keys.revoke(row.id)
    api_keys.uow.commit()
    assert revoked.revoked_at is not None
    assert api_keys.revoke(row.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(InvalidAPIKeyError, match="revoked"):
        authenticate(key)


def test_keys_of_inactive_or_deleted_users_are_refused(
    keys_for: Callable, authenticate: Callable, open_uow: OpenUoW, make_user: Callable[..., User]
) -> None:
    inactive, deleted = make_user(), make_user()
    inactive_keys, deleted_keys = keys_for(inactive), keys_for(deleted)
    _, inactive_key = inactive_keys.issue(APIKeyCreate(name="x"))
    inactive_keys.uow.commit()
    _, deleted_key = deleted_keys.issue(APIKeyCreate(name="x"))
    deleted_keys.uow.commit()
    users = open_uow(Actor.system()).service(UserService)
    users.update({"is_active": False}, inactive.id)
    users.tombstone(users.get(deleted.id))
    users.uow.commit()
    for key in (inactive_key, deleted_key):
        with pytest.raises(InvalidAPIKeyError):
            authenticate(key)


def test_members_see_and_revoke_only_their_keys(keys_for: Callable, make_user: Callable[..., User]) -> None:
    admin, alice, bob = make_user(role=Role.ADMIN), make_user(), make_user()
    alice_keys, bob_keys = keys_for(alice), keys_for(bob)
    alice_key, _ = alice_keys.issue(APIKeyCreate(name="alice"))
    alice_keys.uow.commit()
    bob_key, _ = bob_keys.issue(APIKeyCreate(name="bob"))
    bob_keys.uow.commit()
    page = alice_keys.page(ListParams())
    assert ([k.id for k in page.items], page.total) == ([alice_key.id], 1)
    with pytest.raises(NotFoundError):
        alice_keys.revoke(bob_key.id)
    admin_keys = keys_for(admin)
    assert admin_keys.page(ListParams()).total == 2
    assert admin_keys.revoke(bob_key.id).revoked_at is not None


def test_last_used_at_is_recorded_at_most_once_a_minute(
    keys_for: Callable, authenticate: Callable, make_user: Callable[..., User], session: Session
) -> None:
    api_keys = keys_for(make_user())
    row, key = api_keys.issue(APIKeyCreate(name="x"))
    api_keys.uow.commit()
    assert row.last_used_at is None
    authenticate(key)
    session.expire_all()
    first_use = session.get(APIKey, row.id).last_used_at
    assert first_use is not None
    authenticate(key)
    session.expire_all()
    assert session.get(APIKey, row.id).last_used_at == first_use


class CountingArgon2:
    """Counts the real argon2 verifications the hasher performs."""

    def __init__(self, hasher: APIKeyHasher) -> None:
        self.real, self.calls = hasher._argon2, 0

    def verify(self, stored_hash: str, key: str) -> bool:
        self.calls += 1
        return self.real.verify(stored_hash, key)

    def hash(self, key: str) -> str:
        return self.real.hash(key)


def test_a_verified_key_costs_argon2_once_per_process(container, make_user: Callable[..., User]) -> None:
    hasher = APIKeyHasher(CHEAP_ARGON2["argon2_time_cost"], CHEAP_ARGON2["argon2_memory_cost_kib"])
    counting = CountingArgon2(hasher)
    hasher._argon2 = counting
    counted = dataclasses.replace(container, hasher=hasher)  # its factories pass this hasher

    def api_keys(actor: Actor) -> tuple[UnitOfWork, APIKeyService]:
        uow = counted.unit_of_work(actor)
        return uow, uow.service(APIKeyService)

    with api_keys(actor_of(make_user()))[0] as uow:
        _, key = uow.service(APIKeyService).issue(APIKeyCreate(name="x"))
    for _ in range(5):
        with api_keys(Actor.anonymous())[0] as uow:
            uow.service(APIKeyService).authenticate(key)
    assert counting.calls == 1
    # A wrong secret under the same prefix is never answered from memory, and its stored check
    # refuses it without argon2.
    with pytest.raises(InvalidAPIKeyError), api_keys(Actor.anonymous())[0] as uow:
        uow.service(APIKeyService).authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert counting.calls == 1


def test_memory_of_verified_keys_is_bounded() -> None:
    hasher = APIKeyHasher(time_cost=1, memory_cost_kib=1024, remember=3)
    keys = [generate_api_key().key for _ in range(5)]
    hashes = [hasher.hash(key) for key in keys]
    for key, stored in zip(keys, hashes, strict=True):
        assert hasher.verify(key, stored)
    assert len(hasher._verified) == 3
    assert not hasher.verify(keys[0], hashes[1])
    assert not hasher.verify(keys[0], "not-an-argon2-hash")


def test_new_key_checks_like_issue_and_bulk_create_refuses_an_unknown_owner(
    keys_for: Callable[..., APIKeyService], make_user: Callable[..., User]
) -> None:
    user = make_user()
    service = keys_for(user, frozenset({UserPermission.USERS_READ}))
    with pytest.raises(PermissionDeniedError):
        service.new_key(APIKeyCreate(name="wider", scopes=[UserPermission.USERS_WRITE]))
    values, key = service.new_key(APIKeyCreate(name="bulk"))
    assert (values["user_id"], values["scopes"], api_key_prefix(key)) == (user.id, ["users:read"], values["prefix"])
    assert "key_hash" not in values
    orphan = {**values, "user_id": generate_uuid(), "key_hash": "x"}
    with pytest.raises(ConflictError):
        keys_for(Actor.system()).create_many_if_absent([orphan])


def test_a_key_stores_a_short_check_of_its_secret_and_never_the_secret(
    keys_for: Callable[..., APIKeyService], make_user: Callable[..., User]
) -> None:
    service = keys_for(make_user(), frozenset({UserPermission.USERS_READ}))
    row, key = service.issue(APIKeyCreate(name="checked"))
    assert row.secret_check == secret_check(key)
    assert len(row.secret_check) == 8  # 32 bits of a 256-bit secret: nothing usable
    assert row.secret_check not in key


def test_failure_counts_forget_what_the_window_left_behind() -> None:
    limiter = AttemptLimiter(per_client=2, per_key=2, window_seconds=0.05)
    for client in range(100):
        assert limiter.retry_after(str(client), "sk_prefix") is None
    assert limiter._failures == {}  # asking stores nothing
    assert [limiter.failed("10.0.0.1", "sk_a") for _ in range(3)] == [None, None, 1]
    assert limiter.failed("10.0.0.1", "sk_b") == 1  # the client is at its limit, whatever the prefix
    time.sleep(0.06)
    assert limiter.retry_after("10.0.0.1", "sk_a") is None
    many = AttemptLimiter(per_client=1, per_key=1, window_seconds=0.01, prune_above=50)
    for client in range(500):
        many.failed(str(client), f"sk_{client}")
        time.sleep(0.0002)
    assert len(many._failures) < 500  # expired slots were dropped along the way
