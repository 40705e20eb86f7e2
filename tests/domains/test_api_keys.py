"""API keys: issuing, authenticating (expiry, revocation, wrong secret, unknown prefix), caching."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from app.domains.base.authorization import AuthMethod, AuthorizationContext, Role
from app.domains.base.exceptions import DomainValidationError, NotFoundError, PermissionDeniedError
from app.domains.base.filters import ListParams
from app.domains.users.authorization import ALL_SCOPES, Scope
from app.domains.users.exceptions import InvalidAPIKeyError
from app.domains.users.models import APIKey, User
from app.domains.users.schemas import APIKeyCreate
from app.domains.users.service import APIKeyService, UserService
from app.infrastructure.security import APIKeyHasher, api_key_prefix, generate_api_key
from tests.helpers import CHEAP_ARGON2


def actor(user: User, scopes: frozenset[str] = ALL_SCOPES) -> AuthorizationContext:
    return AuthorizationContext(user.id, Role(user.role), scopes, AuthMethod.API_KEY)


@pytest.fixture
def api_keys(session: Session, hasher: APIKeyHasher) -> APIKeyService:
    return APIKeyService(session, hasher=hasher, auto_commit=True)


def test_generated_keys_are_recognisable_and_unique() -> None:
    keys = {generate_api_key().key for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert key.startswith("sk_")
        assert api_key_prefix(key) == key[:19]
    assert api_key_prefix("sk_short") is None
    assert api_key_prefix("") is None


def test_issue_stores_only_a_hash_and_returns_the_key_once(
    api_keys: APIKeyService, make_user: Callable[..., User]
) -> None:
    user = make_user()
    row, key = api_keys.issue(actor(user), APIKeyCreate(name="ci"))
    assert key.startswith(row.prefix + "_")
    assert key not in row.key_hash
    assert row.key_hash.startswith("$argon2id$")
    assert sorted(row.scopes) == sorted(ALL_SCOPES)
    context = api_keys.authenticate(key)
    assert (context.user_id, context.role, context.method, context.api_key_id) == (
        user.id,
        Role.MEMBER,
        AuthMethod.API_KEY,
        row.id,
    )


def test_a_key_cannot_grant_more_than_its_creator_holds(
    api_keys: APIKeyService, make_user: Callable[..., User]
) -> None:
    user = make_user()
    read_only = actor(user, frozenset({Scope.USERS_READ, Scope.API_KEYS_WRITE}))
    with pytest.raises(PermissionDeniedError, match="users:write"):
        api_keys.issue(read_only, APIKeyCreate(name="x", scopes=[Scope.USERS_WRITE]))
    row, _ = api_keys.issue(read_only, APIKeyCreate(name="x"))
    assert sorted(row.scopes) == sorted([Scope.USERS_READ, Scope.API_KEYS_WRITE])


def test_expiry_in_the_past_is_refused(api_keys: APIKeyService, make_user: Callable[..., User]) -> None:
    with pytest.raises(DomainValidationError):
        api_keys.issue(actor(make_user()), APIKeyCreate(name="x", expires_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_the_system_actor_cannot_own_keys(api_keys: APIKeyService) -> None:
    with pytest.raises(PermissionDeniedError):
        api_keys.issue(AuthorizationContext.system(ALL_SCOPES), APIKeyCreate(name="x"))


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
def test_bad_keys_are_refused(api_keys: APIKeyService, make_user: Callable[..., User], tamper: Callable) -> None:
    _, key = api_keys.issue(actor(make_user()), APIKeyCreate(name="x"))
    api_keys.authenticate(key)  # the genuine key works, and is now remembered
    with pytest.raises(InvalidAPIKeyError):
        api_keys.authenticate(tamper(key))


def test_expired_key_is_refused(api_keys: APIKeyService, make_user: Callable[..., User], session: Session) -> None:
    row, key = api_keys.issue(
        actor(make_user()), APIKeyCreate(name="x", expires_at=datetime.now(UTC) + timedelta(hours=1))
    )
    api_keys.authenticate(key)
    api_keys.update({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, row.id)
    with pytest.raises(InvalidAPIKeyError, match="expired"):
        api_keys.authenticate(key)


def test_revocation_applies_to_the_very_next_check(api_keys: APIKeyService, make_user: Callable[..., User]) -> None:
    user = make_user()
    row, key = api_keys.issue(actor(user), APIKeyCreate(name="x"))
    api_keys.authenticate(key)
    revoked = api_keys.revoke_visible(actor(user), row.id)
    assert revoked.revoked_at is not None
    assert api_keys.revoke_visible(actor(user), row.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(InvalidAPIKeyError, match="revoked"):
        api_keys.authenticate(key)


def test_keys_of_inactive_or_deleted_users_are_refused(
    api_keys: APIKeyService, session: Session, make_user: Callable[..., User]
) -> None:
    users = UserService(session, auto_commit=True)
    inactive, deleted = make_user(), make_user()
    _, inactive_key = api_keys.issue(actor(inactive), APIKeyCreate(name="x"))
    _, deleted_key = api_keys.issue(actor(deleted), APIKeyCreate(name="x"))
    users.update({"is_active": False}, inactive.id)
    users.tombstone(deleted)
    for key in (inactive_key, deleted_key):
        with pytest.raises(InvalidAPIKeyError):
            api_keys.authenticate(key)


def test_members_see_and_revoke_only_their_keys(api_keys: APIKeyService, make_user: Callable[..., User]) -> None:
    admin, alice, bob = make_user(role=Role.ADMIN), make_user(), make_user()
    alice_key, _ = api_keys.issue(actor(alice), APIKeyCreate(name="alice"))
    bob_key, _ = api_keys.issue(actor(bob), APIKeyCreate(name="bob"))
    items, total = api_keys.list_visible(actor(alice), ListParams())
    assert ([k.id for k in items], total) == ([alice_key.id], 1)
    with pytest.raises(NotFoundError):
        api_keys.revoke_visible(actor(alice), bob_key.id)
    assert api_keys.list_visible(actor(admin), ListParams())[1] == 2
    assert api_keys.revoke_visible(actor(admin), bob_key.id).revoked_at is not None


def test_last_used_at_is_recorded_at_most_once_a_minute(
    api_keys: APIKeyService, make_user: Callable[..., User], session: Session
) -> None:
    row, key = api_keys.issue(actor(make_user()), APIKeyCreate(name="x"))
    assert row.last_used_at is None
    api_keys.authenticate(key)
    session.expire_all()
    first_use = session.get(APIKey, row.id).last_used_at
    assert first_use is not None
    api_keys.authenticate(key)
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


def test_a_verified_key_costs_argon2_once_per_process(make_user: Callable[..., User], session: Session) -> None:
    hasher = APIKeyHasher(CHEAP_ARGON2["argon2_time_cost"], CHEAP_ARGON2["argon2_memory_cost_kib"])
    counting = CountingArgon2(hasher)
    hasher._argon2 = counting
    api_keys = APIKeyService(session, hasher=hasher, auto_commit=True)
    _, key = api_keys.issue(actor(make_user()), APIKeyCreate(name="x"))
    for _ in range(5):
        api_keys.authenticate(key)
    assert counting.calls == 1
    # A wrong secret under the same prefix is never answered from memory.
    with pytest.raises(InvalidAPIKeyError):
        api_keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert counting.calls == 2


def test_memory_of_verified_keys_is_bounded() -> None:
    hasher = APIKeyHasher(time_cost=1, memory_cost_kib=1024, remember=3)
    keys = [generate_api_key().key for _ in range(5)]
    hashes = [hasher.hash(key) for key in keys]
    for key, stored in zip(keys, hashes, strict=True):
        assert hasher.verify(key, stored)
    assert len(hasher._verified) == 3
    assert not hasher.verify(keys[0], hashes[1])
    assert not hasher.verify(keys[0], "not-an-argon2-hash")
