"""Repository base: advanced-alchemy's sync repository (psycopg2 and sqlite3 are sync drivers)."""

from typing import Any, TypeVar

from advanced_alchemy.repository import SQLAlchemySyncRepository
from sqlalchemy.dialects import postgresql, sqlite

from app.domains.base.models import TableBase

ModelT = TypeVar("ModelT", bound=TableBase)


_INSERT_BY_DIALECT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class Repository(SQLAlchemySyncRepository[ModelT]):
    """Shared by every domain repository; declare `model_type` (and `match_fields` when upserting)."""

    def insert_if_absent(self, values: dict[str, Any], unique_column: str) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING: race-free "create unless it exists". True if inserted.

        A concurrent transaction inserting the same key makes this one wait for it, then do nothing.
        """
        row = self.model_type(**values)  # fills the Python-side defaults (id, timestamps)
        insert = _INSERT_BY_DIALECT[self.session.get_bind().dialect.name]
        statement = (
            insert(self.model_type).values(row.model_dump()).on_conflict_do_nothing(index_elements=[unique_column])
        )
        return self.session.execute(statement).rowcount == 1
