"""The base every table inherits: a time-ordered UUID key and UTC timestamps."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from sqlalchemy import FromClause
from sqlalchemy.orm import Mapper
from sqlmodel import Field, SQLModel
from uuid_utils.compat import uuid7

# Named constraints let later migrations (SQLite batch mode included) alter them by name.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class TableBase(SQLModel):
    """Not a table itself. advanced-alchemy's mixins cannot be combined with SQLModel tables.

    Every sortable field has an index, so a page is read from the index rather than a sort.
    """

    if TYPE_CHECKING:  # what SQLAlchemy sets on each table subclass (advanced-alchemy's ModelProtocol)
        __table__: ClassVar[FromClause]
        __mapper__: ClassVar[Mapper[Any]]

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow, index=True, sa_column_kwargs={"onupdate": utcnow})
