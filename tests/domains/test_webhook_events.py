"""The webhook delivery log: recorded once per svix id, and visible to admins only."""

from collections.abc import Callable
from typing import Any

import pytest

from app.domains.base.actors import Actor, Role
from app.domains.base.lists import ListParams
from app.domains.base.service import ServiceBase
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.clerk_user_sync import ClerkUserSync
from app.domains.users.models import User
from app.domains.webhooks.clerk_deliveries import Applied, ClerkEventHandlers, clerk_event_handlers
from app.domains.webhooks.models import Outcome
from app.domains.webhooks.schemas import ClerkEvent
from app.domains.webhooks.service import REDACTED, WebhookEventService
from tests.conftest import actor_of

OpenUoW = Callable[[Actor], UnitOfWork]


def test_a_delivery_is_recorded_once(open_uow: OpenUoW) -> None:
    events = open_uow(Actor.system()).service(WebhookEventService)
    first = events.record_once("clerk", "msg_1", "user.created", "user_1", {"n": 1})
    assert first is not None
    assert events.record_once("clerk", "msg_1", "user.created", "user_1", {"n": 2}) is None
    finished = events.finish(first, Outcome.FAILED, "x" * 2000)
    assert (finished.outcome, len(finished.detail), finished.processed_at is not None) == ("failed", 1000, True)
    assert events.count() == 1


def test_only_admins_see_the_log(open_uow: OpenUoW, make_user: Callable[..., User]) -> None:
    system = open_uow(Actor.system())
    system.service(WebhookEventService).record_once("clerk", "msg_1", "user.created", None, {})
    system.commit()
    admin, member = make_user(role=Role.ADMIN), make_user()
    assert open_uow(actor_of(admin)).service(WebhookEventService).page(ListParams()).total == 1
    members_view = open_uow(actor_of(member)).service(WebhookEventService)
    assert (members_view.page(ListParams()).items, members_view.count()) == ([], 0)


def test_redacting_a_subject_blanks_only_its_payloads(open_uow: OpenUoW) -> None:
    events = open_uow(Actor.system()).service(WebhookEventService)
    mine = events.record_once("clerk", "msg_1", "user.created", "user_1", {"email": "a@example.com"})
    other = events.record_once("clerk", "msg_2", "user.created", "user_2", {"email": "b@example.com"})
    events.redact_subject("clerk", "user_1")
    events.session.expire_all()
    assert (events.get(mine.id).payload, events.get(other.id).payload) == (REDACTED, {"email": "b@example.com"})


class OrganizationsStandIn(ServiceBase):
    """What a domain registers for its Clerk event types (organizations will)."""

    def apply_organization(self, data: dict[str, Any]) -> Applied:
        return Outcome.PROCESSED, f"{data['id']} applied as {self.actor.method}"


def test_clerk_events_go_to_the_service_a_domain_registered(open_uow: OpenUoW) -> None:
    handlers = ClerkEventHandlers()
    handlers.register(OrganizationsStandIn, OrganizationsStandIn.apply_organization, "organization.created")
    uow = open_uow(Actor.anonymous())  # a webhook's unit: the deliveries say who acts
    created = ClerkEvent("organization.created", {"id": "org_1"})
    assert handlers.apply(uow, Actor.system(), created) == (Outcome.PROCESSED, "org_1 applied as system")
    unknown = ClerkEvent("session.created", {"id": "sess_1"})
    assert handlers.apply(uow, Actor.system(), unknown) == (
        Outcome.IGNORED,
        "session.created events are recorded, not applied",
    )


def test_each_clerk_event_type_is_applied_by_one_service() -> None:
    assert clerk_event_handlers.event_types() == {
        *("user.created", "user.updated", "user.deleted"),
        *("organization.created", "organization.updated", "organization.deleted"),
        *("organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted"),
    }
    handlers = ClerkEventHandlers()
    handlers.register(ClerkUserSync, ClerkUserSync.apply_user, "user.created")
    with pytest.raises(ValueError, match=r"user\.created is already applied by ClerkUserSync"):
        handlers.register(OrganizationsStandIn, OrganizationsStandIn.apply_organization, "user.created")
