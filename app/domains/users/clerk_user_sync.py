"""Clerk → local users: the rules for webhook events, for session-token users seen first, and for
the reconciliation with Clerk's own list of users (the clerk-reconciliation flow).

Deliveries are at-least-once and unordered, so: upsert by Clerk id, ignore an update older than
the one stored, and keep a tombstone on deletion so a late create/update cannot resurrect a user.
"""

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property, partial
from typing import Annotated, Any, cast

import msgspec
from sqlalchemy import Select, bindparam, select
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from app.domains.base.actors import Actor, AuthMethod, Role, require_admin
from app.domains.base.exceptions import AuthenticationError, DomainError, MalformedInputError
from app.domains.base.permissions import permissions
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.users.models import User
from app.domains.users.service import UserService, is_usable, keep_actor_row
from app.domains.webhooks.models import Outcome
from app.domains.webhooks.service import WebhookEventService

SOURCE = "clerk"

# Tombstones included, on purpose. Built once: constructing a statement costs more than running it.
_USER_BY_CLERK_ID = select(User).where(col(User.clerk_id) == bindparam("clerk_id"))
_USER_BY_CLERK_ID_FOR_UPDATE = _USER_BY_CLERK_ID.with_for_update()
# The column is `str | None`; this query selects no NULL, so its rows are `str`.
_LIVE_CLERK_IDS = cast(
    Select[str],
    select(col(User.clerk_id))
    .where(col(User.clerk_id).is_not(None), col(User.deleted_at).is_(None), col(User.clerk_id) > bindparam("after"))
    .order_by(col(User.clerk_id))
    .limit(bindparam("limit")),
)

# Signed by Clerk, and still checked: a value the database would refuse (too long, a NUL, a date
# past year 9999) makes the event fail with its reason instead of failing the request.
_NO_NUL = r"^[^\x00]*$"
ClerkId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_NO_NUL)]
Name = Annotated[str, msgspec.Meta(max_length=100, pattern=_NO_NUL)] | None
Millis = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_999)] | None  # Unix ms up to 9999-12-31


class InvalidPayloadError(MalformedInputError):
    """The body is not a Clerk event envelope."""


class ClerkEmailAddress(msgspec.Struct):
    id: str
    email_address: Annotated[str, msgspec.Meta(max_length=320, pattern=_NO_NUL)]


class ClerkUser(msgspec.Struct):
    """The part of Clerk's User object we keep; unknown fields are ignored."""

    id: ClerkId
    email_addresses: list[ClerkEmailAddress] | None = None
    primary_email_address_id: str | None = None
    first_name: Name = None
    last_name: Name = None
    image_url: Annotated[str, msgspec.Meta(max_length=2048, pattern=_NO_NUL)] | None = None
    created_at: Millis = None
    updated_at: Millis = None

    @property
    def primary_email(self) -> str | None:
        """The address whose id is `primary_email_address_id` (never simply the first one)."""
        for address in self.email_addresses or []:
            if address.id == self.primary_email_address_id:
                return address.email_address
        return None


class ClerkDeletedObject(msgspec.Struct):
    id: ClerkId
    deleted: bool = True


class ClerkEvent(msgspec.Struct):
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=_NO_NUL)]
    data: dict[str, Any]  # the envelope's `timestamp` is not used: its unit varies, data.updated_at orders


class Reconciled(StrEnum):
    """What applying one user of Clerk's list did to the local row."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # every synced field was already equal (or a newer update is stored)
    IGNORED = "ignored"  # tombstoned here: a deletion is final, the user stays deleted


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: Outcome | None  # None: a redelivery of an event already recorded
    detail: str | None = None


def _from_millis(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value is not None else None


def _subject_id(value: Any) -> str | None:
    """The event's subject as the log stores it; an id no Clerk object has is not one."""
    if isinstance(value, str) and 0 < len(value) <= 255 and "\x00" not in value:
        return value
    return None


def parse_event(payload: Any) -> ClerkEvent:
    try:
        return msgspec.convert(payload, ClerkEvent)
    except msgspec.ValidationError as error:
        raise InvalidPayloadError(f"not a Clerk event: {error}") from error


class ClerkSync:
    """Applies Clerk events to users, in the caller's unit of work (which commits).

    It acts with the system's authority: its input was verified (a signed webhook, a verified
    session token, Clerk's own API), and a user's sync must reach rows no actor may see.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.session = uow.session

    @cached_property
    def users(self) -> UserService:
        return UserService(self.uow, Actor.system())

    @cached_property
    def events(self) -> WebhookEventService:  # not built on the authentication path
        return WebhookEventService(self.uow, Actor.system())

    def authenticate(self, clerk_id: str) -> Actor:
        """The actor behind a verified session token; its user is created on first sight (the
        `user.created` webhook may not have arrived yet)."""
        user = self.ensure_user(clerk_id)
        if not is_usable(user):
            raise AuthenticationError("the session's user is inactive", reason="user_inactive")
        keep_actor_row(self.session, user)
        return Actor(user.id, Role(user.role), permissions.all(), AuthMethod.CLERK_SESSION)

    def handle_delivery(self, svix_id: str, payload: Any) -> SyncResult:
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
            return SyncResult(None, "already received")
        try:
            outcome, detail = self._apply(event)
        except (DomainError, msgspec.ValidationError, sa_exc.DataError) as error:
            detail = getattr(error, "detail", None) or str(error).splitlines()[0]
            self.uow.rollback()  # the effect goes, and the optimistic event row with it
            return SyncResult(Outcome.FAILED if record(Outcome.FAILED, detail) else None, detail)
        if outcome is not Outcome.PROCESSED:
            self.events.finish(recorded, outcome, detail)
        return SyncResult(outcome, detail)

    def _apply(self, event: ClerkEvent) -> tuple[Outcome, str | None]:
        if event.type in {"user.created", "user.updated"}:
            return self.upsert_user(msgspec.convert(event.data, ClerkUser))
        if event.type == "user.deleted":
            return self.delete_user(msgspec.convert(event.data, ClerkDeletedObject).id)
        return Outcome.IGNORED, f"{event.type} events are recorded, not applied"

    def upsert_user(self, data: ClerkUser) -> tuple[Outcome, str | None]:
        user = self.ensure_user(data.id, created_at=_from_millis(data.created_at), lock=True)
        if user.deleted_at is not None:
            return Outcome.IGNORED, "the user was deleted in Clerk"
        updated_at = _from_millis(data.updated_at)
        if updated_at is not None and user.clerk_updated_at is not None and updated_at < user.clerk_updated_at:
            return Outcome.IGNORED, "an update newer than this one is already applied"
        changes = {
            "email": data.primary_email,
            "first_name": data.first_name,
            "last_name": data.last_name,
            "image_url": data.image_url,
            "clerk_updated_at": updated_at or user.clerk_updated_at,
        }
        self.users.apply_changes(user, changes)
        return Outcome.PROCESSED, None

    def delete_user(self, clerk_id: str) -> tuple[Outcome, str | None]:
        """Tombstone the user, known or not (so a late create/update does not bring it back)."""
        user = self.ensure_user(clerk_id, lock=True)
        self.events.redact_subject(SOURCE, clerk_id)
        if user.deleted_at is None:
            self.users.tombstone(user)
        return Outcome.PROCESSED, None

    def ensure_user(self, clerk_id: str, created_at: datetime | None = None, *, lock: bool = False) -> User:
        """The local user for a Clerk id (tombstones included), created race-free on first sight.

        `lock` holds the row until commit (PostgreSQL), so concurrent events for one user apply
        one after the other and the "older update" check sees the latest state.
        """
        by_clerk_id = _USER_BY_CLERK_ID_FOR_UPDATE if lock else _USER_BY_CLERK_ID
        user = self.session.scalars(by_clerk_id, {"clerk_id": clerk_id}).one_or_none()
        if user is None:
            values: dict[str, Any] = {"clerk_id": clerk_id}
            if created_at is not None:
                values["created_at"] = created_at
            user = self.users.repository.insert_if_absent(values, unique_column="clerk_id")
            if user is None:  # a concurrent first sight inserted it: it has committed, read it
                user = self.session.scalars(by_clerk_id, {"clerk_id": clerk_id}).one()
        return user

    # -- reconciliation with Clerk's list of users (the clerk-reconciliation flow) ----------------
    # Reserved to the system (and admins): the flow's units of work act as Actor.system().

    def reconcile_user(self, payload: Any) -> Reconciled:
        """Apply one User object from Clerk's Backend API with the webhook's rules (`upsert_user`).

        Raises a DomainError when the user cannot be applied (an e-mail another user holds, a
        malformed object): the caller must then roll its unit of work back (a failed flush leaves
        the transaction unusable on PostgreSQL).
        """
        require_admin(self.uow.actor)
        try:
            data = msgspec.convert(payload, ClerkUser)
        except msgspec.ValidationError as error:
            raise InvalidPayloadError(f"not a Clerk user: {error}") from error
        before = self.session.scalars(_USER_BY_CLERK_ID_FOR_UPDATE, {"clerk_id": data.id}).one_or_none()
        # A no-op upsert writes nothing (the ORM only updates changed columns), so `updated_at`
        # (set on every UPDATE) tells an update from a no-op without listing the synced fields again.
        written_at = before.updated_at if before is not None else None
        try:
            self.upsert_user(data)
        except sa_exc.DataError as error:  # a value the database refuses (PostgreSQL)
            raise InvalidPayloadError(str(error.orig).splitlines()[0]) from error
        if before is None:
            return Reconciled.CREATED
        if before.deleted_at is not None:
            return Reconciled.IGNORED
        return Reconciled.UNCHANGED if before.updated_at == written_at else Reconciled.UPDATED

    def absent_from(self, listed: Set[str], limit: int, after: str = "") -> tuple[list[str], str | None]:
        """One batch of the local users linked to Clerk and not deleted whose Clerk id is not in
        `listed`: scans up to `limit` of them in Clerk-id order from `after`, and returns the absent
        ids and where the next batch starts (None: the scan is done). Reads only."""
        require_admin(self.uow.actor)
        batch = list(self.session.scalars(_LIVE_CLERK_IDS, {"after": after, "limit": limit}))
        absent = [clerk_id for clerk_id in batch if clerk_id not in listed]
        return absent, (batch[-1] if len(batch) == limit else None)

    def tombstone_deleted(self, clerk_ids: Iterable[str]) -> int:
        """Tombstone the users Clerk no longer has (`delete_user`: personal data dropped, API keys
        revoked, webhook payloads redacted); ids already tombstoned or unknown here are skipped.
        Returns how many were tombstoned."""
        require_admin(self.uow.actor)
        done = 0
        for clerk_id in clerk_ids:
            user = self.session.scalars(_USER_BY_CLERK_ID, {"clerk_id": clerk_id}).one_or_none()
            if user is not None and user.deleted_at is None:
                self.delete_user(clerk_id)
                done += 1
        return done
