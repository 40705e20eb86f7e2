"""Use cases of the idempotency domain: claim a key for a request, store its response, replay it.

A request with a key runs in its own unit of work as usual, with two more statements:

    outcome = uow.service(IdempotencyService).claim(key, request_digest(...))
    if isinstance(outcome, StoredResponse): answer it (a retry: nothing runs again)
    else: run the operation, then `store(outcome, key, response)`: committed with its effect

The claim is an INSERT on the unique (user_id, key_hash) index, so a concurrent duplicate waits for
the first request's transaction (the index, not a status column, is the lock): if the first
commits, the duplicate replays its response; if it rolls back (any error), the duplicate runs. The
wait is bounded on PostgreSQL (IN_FLIGHT_WAIT_MS, then 409 `idempotency_key_in_flight`); SQLite
serialises writers anyway, bounded by its busy timeout.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, text
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from app.domains.base.actors import Actor, require_admin
from app.domains.base.exceptions import PermissionDeniedError
from app.domains.base.models import utcnow
from app.domains.base.service import Service
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.idempotency.exceptions import IdempotencyKeyInFlightError, IdempotencyKeyReusedError
from app.domains.idempotency.models import IdempotencyKey
from app.domains.idempotency.repository import IdempotencyKeyRepository
from app.domains.idempotency.rules import idempotency_keys_policy
from app.infrastructure.sealing import seal, secret_digest, unseal

# How long a duplicate waits for the first request with its key (PostgreSQL's lock_timeout on the
# claim): a creating request takes milliseconds; one still running after this gets a 409.
IN_FLIGHT_WAIT_MS = 2000
POSTGRES_LOCK_NOT_AVAILABLE = "55P03"
KEY_PURPOSE = b"idempotency-key"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: dict[str, str]  # what the operation set (Location, Content-Type), not per-request ones
    body: bytes


class IdempotencyService(Service[IdempotencyKey]):
    repository_type = IdempotencyKeyRepository
    policy = idempotency_keys_policy

    def __init__(self, uow: UnitOfWork, actor: Actor | None = None, *, ttl: timedelta) -> None:
        super().__init__(uow, actor)
        self.ttl = ttl

    def claim(self, key: str, request: str) -> IdempotencyKey | StoredResponse:
        """The stored response of an earlier request with this key (a retry), or the new row that
        claims the key for this one. `request` digests method, path and body (`request_digest`);
        the actor's tenant is added here: the same request in another organization is another one.
        The same key with another request is refused (422)."""
        user_id = self._user_id()
        key_hash = secret_digest(key, KEY_PURPOSE)
        fingerprint = hashlib.sha256(f"{request}\n{self.actor.organization_id or ''}".encode()).hexdigest()
        now = utcnow()
        values = {"user_id": user_id, "key_hash": key_hash, "fingerprint": fingerprint, "expires_at": now + self.ttl}
        for _ in range(2):  # a second time only when an expired row was in the way
            claimed = self._insert_waiting(values)
            if claimed is not None:
                return claimed
            existing = self.session.scalars(
                select(IdempotencyKey).where(
                    col(IdempotencyKey.user_id) == user_id, col(IdempotencyKey.key_hash) == key_hash
                )
            ).one_or_none()
            if existing is not None and existing.expires_at > now:
                return self._replay(existing, key, fingerprint)
            if existing is not None:  # expired, not purged yet: the key is free again
                self.session.execute(
                    delete(IdempotencyKey).where(
                        col(IdempotencyKey.id) == existing.id, col(IdempotencyKey.expires_at) <= now
                    )
                )
        raise IdempotencyKeyInFlightError  # the row kept coming back and going: let the client retry

    def store(self, claimed: IdempotencyKey, key: str, response: StoredResponse) -> None:
        """Keep the response for retries, sealed under the key (committed with the operation)."""
        sealed = seal(key, _context(claimed), response.body)
        changes = {"response_status": response.status, "response_headers": response.headers, "response_body": sealed}
        self.apply_changes(claimed, changes)

    def purge_expired(self, now: datetime, limit: int) -> int:
        """Delete up to `limit` keys expired at `now` (admins and the system)."""
        require_admin(self.actor)
        expired = (
            select(col(IdempotencyKey.id))
            .where(col(IdempotencyKey.expires_at) <= now)
            .order_by(col(IdempotencyKey.expires_at))
            .limit(limit)
        )
        return self.affected_rows(delete(IdempotencyKey).where(col(IdempotencyKey.id).in_(expired.scalar_subquery())))

    def _user_id(self) -> UUID:
        if self.actor.user_id is None:
            raise PermissionDeniedError("an Idempotency-Key belongs to a user: this actor has none")
        return self.actor.user_id

    def _insert_waiting(self, values: dict[str, Any]) -> IdempotencyKey | None:
        """INSERT ... ON CONFLICT DO NOTHING: on PostgreSQL it waits for a concurrent transaction
        holding the same key, at most IN_FLIGHT_WAIT_MS (then the lock timeout is the session's
        again, so the operation's own statements are not bounded by it)."""
        postgres = self.session.get_bind().dialect.name == "postgresql"
        if postgres:
            self.session.execute(text(f"SET LOCAL lock_timeout = {IN_FLIGHT_WAIT_MS}"))
        try:
            claimed = self.repository.insert_if_absent(values, unique_columns=("user_id", "key_hash"))
        except sa_exc.OperationalError as error:
            if getattr(error.orig, "pgcode", None) == POSTGRES_LOCK_NOT_AVAILABLE:
                raise IdempotencyKeyInFlightError from error
            raise
        if postgres:
            self.session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
        return claimed

    def _replay(self, existing: IdempotencyKey, key: str, fingerprint: str) -> StoredResponse:
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError
        if existing.response_status is None or existing.response_body is None:  # never committed so
            raise IdempotencyKeyInFlightError
        body = unseal(key, _context(existing), existing.response_body)
        return StoredResponse(existing.response_status, dict(existing.response_headers or {}), body)


def _context(row: IdempotencyKey) -> bytes:
    """What a sealed response is bound to: its user and its row (it opens nowhere else)."""
    return b"idempotent-response\x00" + row.user_id.bytes + row.id.bytes
