"""The webhook delivery log: recorded once per svix id, and visible to admins only."""

from collections.abc import Callable

from sqlalchemy.orm import Session

from app.domains.base.authorization import AuthMethod, AuthorizationContext, Role
from app.domains.base.filters import ListParams
from app.domains.users.authorization import ALL_SCOPES
from app.domains.users.models import User
from app.domains.webhooks.models import Outcome
from app.domains.webhooks.service import REDACTED, WebhookEventService


def actor(user: User) -> AuthorizationContext:
    return AuthorizationContext(user.id, Role(user.role), ALL_SCOPES, AuthMethod.API_KEY)


def test_a_delivery_is_recorded_once(session: Session) -> None:
    events = WebhookEventService(session)
    first = events.record_once("clerk", "msg_1", "user.created", "user_1", {"n": 1})
    assert first is not None
    assert events.record_once("clerk", "msg_1", "user.created", "user_1", {"n": 2}) is None
    finished = events.finish(first, Outcome.FAILED, "x" * 2000)
    assert (finished.outcome, len(finished.detail), finished.processed_at is not None) == ("failed", 1000, True)
    assert events.count() == 1


def test_only_admins_see_the_log(session: Session, make_user: Callable[..., User]) -> None:
    events = WebhookEventService(session)
    events.record_once("clerk", "msg_1", "user.created", None, {})
    admin, member = make_user(role=Role.ADMIN), make_user()
    assert events.list_visible(actor(admin), ListParams())[1] == 1
    assert events.list_visible(actor(member), ListParams()) == ([], 0)


def test_redacting_a_subject_blanks_only_its_payloads(session: Session) -> None:
    events = WebhookEventService(session)
    mine = events.record_once("clerk", "msg_1", "user.created", "user_1", {"email": "a@example.com"})
    other = events.record_once("clerk", "msg_2", "user.created", "user_2", {"email": "b@example.com"})
    events.redact_subject("clerk", "user_1")
    session.expire_all()
    assert (events.get(mine.id).payload, events.get(other.id).payload) == (REDACTED, {"email": "b@example.com"})
