"""Repositories of the idempotency domain."""

from app.domains.base.repository import Repository
from app.domains.idempotency.models import IdempotencyKey


class IdempotencyKeyRepository(Repository[IdempotencyKey]):
    model_type = IdempotencyKey
