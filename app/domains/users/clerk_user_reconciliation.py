"""The reconciliation of local users with Clerk's own list of users (the clerk-reconciliation flow):
each user Clerk lists is applied with the webhook's rules, and the local users Clerk no longer has
are found and tombstoned. Reserved to the system and admins: the flow's units act as `Actor.system()`.
"""

from collections.abc import Iterable, Set
from enum import StrEnum
from functools import cached_property
from typing import Any, cast

import msgspec
from sqlalchemy import Select, bindparam, select
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from app.domains.base.actors import require_admin
from app.domains.base.service import ServiceBase
from app.domains.users.clerk_user_sync import USER_BY_CLERK_ID, USER_BY_CLERK_ID_FOR_UPDATE, ClerkUser, ClerkUserSync
from app.domains.users.models import User
from app.domains.webhooks.exceptions import InvalidPayloadError

# The column is `str | None`; this query selects no NULL, so its rows are `str`.
_LIVE_CLERK_IDS = cast(
    Select[str],
    select(col(User.clerk_id))
    .where(col(User.clerk_id).is_not(None), col(User.deleted_at).is_(None), col(User.clerk_id) > bindparam("after"))
    .order_by(col(User.clerk_id))
    .limit(bindparam("limit")),
)


class Reconciled(StrEnum):
    """What applying one user of Clerk's list did to the local row."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # every synced field was already equal (or a newer update is stored)
    IGNORED = "ignored"  # tombstoned here: a deletion is final, the user stays deleted


class ClerkUserReconciliation(ServiceBase):
    """`uow.service(ClerkUserReconciliation)` on a unit acting as the system (or an admin)."""

    @cached_property
    def sync(self) -> ClerkUserSync:
        return self.uow.service(ClerkUserSync, actor=self.actor)

    def reconcile_user(self, payload: Any) -> Reconciled:
        """Apply one User object from Clerk's Backend API with the webhook's rules (`upsert_user`).

        Raises a DomainError when the user cannot be applied (an e-mail another user holds, a
        malformed object): the caller must then roll its unit of work back (a failed flush leaves
        the transaction unusable on PostgreSQL).
        """
        require_admin(self.actor)
        try:
            data = msgspec.convert(payload, ClerkUser)
        except msgspec.ValidationError as error:
            raise InvalidPayloadError(f"not a Clerk user: {error}") from error
        before = self.session.scalars(USER_BY_CLERK_ID_FOR_UPDATE, {"clerk_id": data.id}).one_or_none()
        # A no-op upsert writes nothing (the ORM only updates changed columns), so `updated_at`
        # (set on every UPDATE) tells an update from a no-op without listing the synced fields again.
        written_at = before.updated_at if before is not None else None
        try:
            self.sync.upsert_user(data)
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
        require_admin(self.actor)
        batch = list(self.session.scalars(_LIVE_CLERK_IDS, {"after": after, "limit": limit}))
        absent = [clerk_id for clerk_id in batch if clerk_id not in listed]
        return absent, (batch[-1] if len(batch) == limit else None)

    def tombstone_deleted(self, clerk_ids: Iterable[str]) -> int:
        """Tombstone the users Clerk no longer has (`delete_user`: personal data dropped, API keys
        revoked, webhook payloads redacted); ids already tombstoned or unknown here are skipped.
        Returns how many were tombstoned."""
        require_admin(self.actor)
        done = 0
        for clerk_id in clerk_ids:
            user = self.session.scalars(USER_BY_CLERK_ID, {"clerk_id": clerk_id}).one_or_none()
            if user is not None and user.deleted_at is None:
                self.sync.delete_user(clerk_id)
                done += 1
        return done
