"""Clerk's user data applied to local users: the `user.*` webhook events (registered with the
deliveries when this package is imported), the user a session token names before its webhook has
arrived, and each user of the reconciliation (`clerk_user_reconciliation.py`).

Deliveries are at-least-once and unordered, so: upsert by Clerk id, ignore an update older than
the one stored, and keep a tombstone on deletion so a late create/update cannot resurrect a user.
"""

from datetime import datetime
from functools import cached_property
from typing import Annotated, Any

import msgspec
from sqlalchemy import bindparam, select
from sqlmodel import col

from app.domains.base.actors import Actor, AuthMethod, Role, require_admin
from app.domains.base.exceptions import AuthenticationError
from app.domains.base.permissions import permissions
from app.domains.base.service import ServiceBase
from app.domains.users.models import User
from app.domains.users.rules import is_usable
from app.domains.users.service import UserService, keep_actor_row
from app.domains.webhooks.clerk_deliveries import SOURCE, Applied, clerk_event_handlers
from app.domains.webhooks.models import Outcome
from app.domains.webhooks.schemas import NO_NUL, ClerkDeletedObject, ClerkId, Millis, from_millis
from app.domains.webhooks.service import WebhookEventService

# Tombstones included, on purpose. Built once: constructing a statement costs more than running it.
USER_BY_CLERK_ID = select(User).where(col(User.clerk_id) == bindparam("clerk_id"))
USER_BY_CLERK_ID_FOR_UPDATE = USER_BY_CLERK_ID.with_for_update()

Name = Annotated[str, msgspec.Meta(max_length=100, pattern=NO_NUL)] | None


class ClerkEmailAddress(msgspec.Struct):
    id: str
    email_address: Annotated[str, msgspec.Meta(max_length=320, pattern=NO_NUL)]


class ClerkUser(msgspec.Struct):
    """The part of Clerk's User object we keep; unknown fields are ignored."""

    id: ClerkId
    email_addresses: list[ClerkEmailAddress] | None = None
    primary_email_address_id: str | None = None
    first_name: Name = None
    last_name: Name = None
    image_url: Annotated[str, msgspec.Meta(max_length=2048, pattern=NO_NUL)] | None = None
    created_at: Millis = None
    updated_at: Millis = None

    @property
    def primary_email(self) -> str | None:
        """The address whose id is `primary_email_address_id` (never simply the first one)."""
        for address in self.email_addresses or []:
            if address.id == self.primary_email_address_id:
                return address.email_address
        return None


class ClerkUserSync(ServiceBase):
    """Applies Clerk's users to local ones, in the caller's unit of work (which commits).

    Its input was verified (a signed webhook, a verified session token, Clerk's own API) and a
    user's sync must reach rows no member may see, so it acts as the system or an admin:
    `uow.service(ClerkUserSync, actor=Actor.system())`; any other actor is refused.
    """

    @cached_property
    def users(self) -> UserService:
        require_admin(self.actor)
        return self.uow.service(UserService, actor=self.actor)

    def authenticate(self, clerk_id: str) -> Actor:
        """The actor behind a verified session token; its user is created on first sight (the
        `user.created` webhook may not have arrived yet)."""
        user = self.ensure_user(clerk_id)
        if not is_usable(user):
            raise AuthenticationError("the session's user is inactive", reason="user_inactive")
        keep_actor_row(self.session, user)
        return Actor(user.id, Role(user.role), permissions.all(), AuthMethod.CLERK_SESSION)

    def apply_user(self, data: dict[str, Any]) -> Applied:
        """`user.created`, `user.updated`."""
        return self.upsert_user(msgspec.convert(data, ClerkUser))

    def apply_deletion(self, data: dict[str, Any]) -> Applied:
        """`user.deleted`."""
        return self.delete_user(msgspec.convert(data, ClerkDeletedObject).id)

    def upsert_user(self, data: ClerkUser) -> Applied:
        user = self.ensure_user(data.id, created_at=from_millis(data.created_at), lock=True)
        if user.deleted_at is not None:
            return Outcome.IGNORED, "the user was deleted in Clerk"
        updated_at = from_millis(data.updated_at)
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

    def delete_user(self, clerk_id: str) -> Applied:
        """Tombstone the user, known or not (so a late create/update does not bring it back)."""
        user = self.ensure_user(clerk_id, lock=True)
        self.uow.service(WebhookEventService, actor=self.actor).redact_subject(SOURCE, clerk_id)
        if user.deleted_at is None:
            self.users.tombstone(user)
        return Outcome.PROCESSED, None

    def ensure_user(self, clerk_id: str, created_at: datetime | None = None, *, lock: bool = False) -> User:
        """The local user for a Clerk id (tombstones included), created race-free on first sight.

        `lock` holds the row until commit (PostgreSQL), so concurrent events for one user apply
        one after the other and the "older update" check sees the latest state.
        """
        require_admin(self.actor)  # before any query; the UserService is built only to insert
        by_clerk_id = USER_BY_CLERK_ID_FOR_UPDATE if lock else USER_BY_CLERK_ID
        user = self.session.scalars(by_clerk_id, {"clerk_id": clerk_id}).one_or_none()
        if user is None:
            values: dict[str, Any] = {"clerk_id": clerk_id}
            if created_at is not None:
                values["created_at"] = created_at
            user = self.users.repository.insert_if_absent(values, unique_columns=("clerk_id",))
            if user is None:  # a concurrent first sight inserted it: it has committed, read it
                user = self.session.scalars(by_clerk_id, {"clerk_id": clerk_id}).one()
        return user


clerk_event_handlers.register(ClerkUserSync, ClerkUserSync.apply_user, "user.created", "user.updated")
clerk_event_handlers.register(ClerkUserSync, ClerkUserSync.apply_deletion, "user.deleted")
