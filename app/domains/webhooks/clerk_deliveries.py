"""Clerk's webhook deliveries: each recorded once, then applied by the domain that registered its
event type.

A domain registers the types it applies when its package is imported, as it registers its
permissions (the users domain registers `user.created`, `user.updated` and `user.deleted`):

    clerk_event_handlers.register(ClerkUserSync, ClerkUserSync.apply_user, "user.created", "user.updated")

The handling service is built on the delivery's unit of work, acting as the deliveries' actor (the
system: the delivery was verified), and its method gets the event's `data`. A type no domain
registered is recorded and acknowledged, not applied. Deliveries are at-least-once and unordered: a
handler applies an event so that any order and any repetition end in the same rows.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

import msgspec
from sqlalchemy import exc as sa_exc

from app.domains.base.actors import Actor
from app.domains.base.exceptions import DomainError
from app.domains.base.service import ServiceBase
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.webhooks.models import Outcome
from app.domains.webhooks.schemas import ClerkEvent, parse_event
from app.domains.webhooks.service import WebhookEventService

SOURCE = "clerk"

# What became of an event, and why (None: nothing to add).
type Applied = tuple[Outcome, str | None]


@dataclass(frozen=True, slots=True)
class _Handler[S]:
    service_type: type[S]
    apply: Callable[[S, dict[str, Any]], Applied]


class ClerkEventHandlers:
    """Which service applies which Clerk event type; each type is applied by one."""

    def __init__(self) -> None:
        self._handlers: dict[str, _Handler[Any]] = {}

    def register[S](
        self, service_type: type[S], apply: Callable[[S, dict[str, Any]], Applied], *event_types: str
    ) -> None:
        for event_type in event_types:
            if (taken := self._handlers.get(event_type)) is not None:
                raise ValueError(f"{event_type} is already applied by {taken.service_type.__name__}")
            self._handlers[event_type] = _Handler(service_type, apply)

    def event_types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def apply(self, uow: UnitOfWork, actor: Actor, event: ClerkEvent) -> Applied:
        handler = self._handlers.get(event.type)
        if handler is None:
            return Outcome.IGNORED, f"{event.type} events are recorded, not applied"
        return handler.apply(uow.service(handler.service_type, actor=actor), event.data)


clerk_event_handlers = ClerkEventHandlers()


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Outcome | None  # None: a redelivery of an event already recorded
    detail: str | None = None


def _subject_id(value: Any) -> str | None:
    """The event's subject as the log stores it; an id no Clerk object has is not one."""
    if isinstance(value, str) and 0 < len(value) <= 255 and "\x00" not in value:
        return value
    return None


class ClerkDeliveries(ServiceBase):
    """Built for a verified delivery, as the system: `uow.service(ClerkDeliveries, actor=Actor.system())`."""

    @cached_property
    def events(self) -> WebhookEventService:
        return self.uow.service(WebhookEventService, actor=self.actor)

    def handle(self, svix_id: str, payload: Any) -> DeliveryResult:
        """Record the delivery and apply it, in the caller's unit of work (it commits once).

        A redelivery (same `svix_id`) is recognised and changes nothing: the event row is inserted
        first (already marked processed, the common case), so a concurrent redelivery waits for
        this transaction and then finds it. An event that cannot be applied rolls the unit of work
        back and is recorded as failed with its reason in a new transaction, so the sender is told
        to stop retrying; an outage of the database is not caught (the sender retries later).
        """
        event = parse_event(payload)
        subject_id = _subject_id(event.data.get("id"))
        record = partial(self.events.record_once, SOURCE, svix_id, event.type, subject_id, payload)
        recorded = record(Outcome.PROCESSED)
        if recorded is None:
            return DeliveryResult(None, "already received")
        try:
            outcome, detail = clerk_event_handlers.apply(self.uow, self.actor, event)
        except (DomainError, msgspec.ValidationError, sa_exc.DataError) as error:
            detail = getattr(error, "detail", None) or str(error).splitlines()[0]
            self.uow.rollback()  # the effect goes, and the optimistic event row with it
            return DeliveryResult(Outcome.FAILED if record(Outcome.FAILED, detail) else None, detail)
        if outcome is not Outcome.PROCESSED:
            self.events.finish(recorded, outcome, detail)
        return DeliveryResult(outcome, detail)
