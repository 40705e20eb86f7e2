"""The record of every accepted webhook delivery."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from app.domains.base.models import TableBase, utcnow


class Outcome(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"  # valid, but nothing to do (a type we do not handle, a stale update...)
    FAILED = "failed"  # valid, but it could not be applied (the reason is in `detail`)


class WebhookEvent(TableBase, table=True):
    __tablename__ = "webhook_events"

    source: str = Field(max_length=32)
    svix_id: str = Field(max_length=255, unique=True, index=True)  # the same across retries
    type: str = Field(max_length=255)
    subject_id: str | None = Field(default=None, max_length=255, index=True)  # e.g. the Clerk user id
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None
    outcome: Outcome | None = Field(default=None, sa_type=sa.String(16))
    detail: str | None = Field(default=None, max_length=1000)
