"""Record each delivery once; the caller applies its effect in the same transaction."""

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlmodel import col

from app.domains.base.actors import require_admin
from app.domains.base.models import utcnow
from app.domains.base.service import Service
from app.domains.webhooks.models import Outcome, WebhookEvent
from app.domains.webhooks.repository import WebhookEventRepository
from app.domains.webhooks.rules import webhook_events_policy

REDACTED = {"redacted": True}
MAX_SVIX_ID_LENGTH = 255  # the column's


def _finished(outcome: Outcome, detail: str | None) -> dict[str, Any]:
    return {"outcome": outcome, "detail": detail[:1000] if detail else None, "processed_at": utcnow()}


def stored_id(svix_id: str) -> str:
    """The id as stored: one longer than the column is kept as its digest (redeliveries, which
    carry the same id, still match)."""
    if len(svix_id) <= MAX_SVIX_ID_LENGTH:
        return svix_id
    return "sha256:" + hashlib.sha256(svix_id.encode()).hexdigest()


class WebhookEventService(Service[WebhookEvent]):
    repository_type = WebhookEventRepository
    policy = webhook_events_policy

    def record_once(
        self,
        source: str,
        svix_id: str,
        event_type: str,
        subject_id: str | None,
        payload: dict[str, Any],
        outcome: Outcome | None = None,
        detail: str | None = None,
    ) -> WebhookEvent | None:
        """The new event row, or None when this delivery was recorded before (a redelivery).

        With an `outcome`, the row is stored already finished (one statement instead of two).
        """
        values = {"source": source, "svix_id": stored_id(svix_id), "type": event_type, "subject_id": subject_id}
        if outcome is not None:
            values |= _finished(outcome, detail)
        return self.repository.insert_if_absent({**values, "payload": payload}, unique_columns=("svix_id",))

    def finish(self, event: WebhookEvent, outcome: Outcome, detail: str | None = None) -> WebhookEvent:
        return self.apply_changes(event, _finished(outcome, detail))

    def delete_received_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` deliveries received before `cutoff` (admins and the system)."""
        require_admin(self.actor)
        old = (
            select(col(WebhookEvent.id))
            .where(col(WebhookEvent.received_at) < cutoff)
            .order_by(col(WebhookEvent.id))
            .limit(limit)
        )
        return self.affected_rows(delete(WebhookEvent).where(col(WebhookEvent.id).in_(old.scalar_subquery())))

    def redact_subject(self, source: str, subject_id: str) -> None:
        """Drop the stored payloads about a subject (a deleted user's personal data)."""
        self.session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.source) == source, col(WebhookEvent.subject_id) == subject_id)
            .values(payload=REDACTED)
        )
