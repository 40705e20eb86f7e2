"""The webhook delivery log: recorded once per svix id, and visible to admins only."""

from collections.abc import Callable

from app.domains.base.actors import Actor, Role
from app.domains.base.lists import ListParams
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.models import User
from app.domains.webhooks.models import Outcome
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
