"""The idempotency domain's rules without HTTP: what counts as the same request, what a sealed
response opens with, and who may claim or purge keys."""

from collections.abc import Callable

import pytest

from app.domains.base.actors import Actor, Role
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.idempotency.fingerprints import canonical_body, request_digest
from app.domains.idempotency.service import IdempotencyService
from app.domains.users.models import User
from app.infrastructure.sealing import SealBrokenError, seal, secret_digest, unseal
from tests.conftest import actor_of


def test_bodies_are_compared_as_json_documents() -> None:
    assert canonical_body(b'{"b": 1, "a": [1, {"y": 2, "x": 1}]}') == b'{"a":[1,{"x":1,"y":2}],"b":1}'
    assert canonical_body(b" \n") == b""
    assert canonical_body(b"not json") == b"not json"
    same = request_digest("post", "/api/projects", b'{"name": "A", "status": "draft"}')
    assert same == request_digest("POST", "/api/projects", b'{"status":"draft","name":"A"}')
    assert same != request_digest("POST", "/api/projects", b'{"status":"draft","name":"B"}')
    assert same != request_digest("POST", "/api/projects/", b'{"status":"draft","name":"A"}')
    # Length-prefixed parts: moving bytes from the path to the body is another request.
    assert request_digest("POST", "/a", b"b") != request_digest("POST", "/ab", b"")


def test_a_sealed_value_opens_only_with_its_secret_and_context() -> None:
    sealed = seal("key-1", b"ctx", b'{"key": "sk_secret"}')
    assert b"sk_secret" not in sealed
    assert unseal("key-1", b"ctx", sealed) == b'{"key": "sk_secret"}'
    for secret, context, value in [
        ("key-2", b"ctx", sealed),
        ("key-1", b"other row", sealed),
        ("key-1", b"ctx", sealed[:-1] + bytes([sealed[-1] ^ 1])),
    ]:
        with pytest.raises(SealBrokenError):
            unseal(secret, context, value)
    assert seal("key-1", b"ctx", b"x") != seal("key-1", b"ctx", b"x")  # a fresh nonce each time
    assert secret_digest("key-1", b"a") != secret_digest("key-1", b"b")


def test_a_key_needs_a_user_and_only_admins_purge(
    open_uow: Callable[[Actor], UnitOfWork], make_user: Callable[..., User]
) -> None:
    with pytest.raises(PermissionDeniedError):
        open_uow(Actor.system()).service(IdempotencyService).claim("k", "digest")
    member = actor_of(make_user(role=Role.MEMBER))
    with pytest.raises(PermissionDeniedError):
        open_uow(member).service(IdempotencyService).purge_expired(utcnow(), 10)
