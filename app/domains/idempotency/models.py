"""Tables of the idempotency domain."""

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import Field

from app.domains.base.models import TableBase


class IdempotencyKey(TableBase, table=True):
    """A key a user sent with a creating request, and the response to replay for it.

    Neither the key nor the response is stored in clear: `key_hash` finds the row, and
    `response_body` is sealed under the key itself (`app/infrastructure/sealing.py`), so only a
    client holding the key can read it back (an API key's secret, say). The row is written in the
    request's own transaction, with the resource it created: a committed row always has its
    response, and a request that failed leaves no row (its key is free for a retry).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("user_id", "key_hash"),)

    user_id: UUID = Field(foreign_key="users.id", ondelete="CASCADE")  # first column of the unique index
    key_hash: str = Field(max_length=64)
    fingerprint: str = Field(max_length=64)  # of the request: method, path, canonical body, tenant
    expires_at: datetime = Field(index=True)
    # Set before the transaction commits (None only while the request that claimed the key runs).
    response_status: int | None = None
    response_headers: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(none_as_null=True))
    response_body: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
