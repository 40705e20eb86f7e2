"""Row policies: which rows an actor may read and write. Services apply them to every query.

A policy answers twice, the same rule in two forms: `row_filter` for SQL (reads, bulk writes) and
`allows` for a row in hand (creates, and a row after an update).
"""

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, false

from app.domains.base.actors import Actor


class RowPolicy(Protocol):
    def row_filter(self, actor: Actor, model: type[Any]) -> ColumnElement[bool] | None:
        """The SQL condition on the rows the actor may touch (None: every row)."""
        ...

    def allows(self, actor: Actor, row: Any) -> bool:
        """Whether the actor may hold this row (a new one, or one it just changed)."""
        ...


@dataclass(frozen=True, slots=True)
class OwnedBy:
    """Admins touch every row; anyone else only the rows whose `owner_field` is their user id."""

    owner_field: str

    def row_filter(self, actor: Actor, model: type[Any]) -> ColumnElement[bool] | None:
        if actor.is_admin:
            return None
        if actor.user_id is None:
            return false()
        owner: ColumnElement[Any] = getattr(model, self.owner_field)
        return owner == actor.user_id

    def allows(self, actor: Actor, row: Any) -> bool:
        return actor.is_admin or (actor.user_id is not None and getattr(row, self.owner_field) == actor.user_id)


@dataclass(frozen=True, slots=True)
class AdminsOnly:
    """Admins touch every row; no one else touches any."""

    def row_filter(self, actor: Actor, model: type[Any]) -> ColumnElement[bool] | None:
        return None if actor.is_admin else false()

    def allows(self, actor: Actor, row: Any) -> bool:
        return actor.is_admin
