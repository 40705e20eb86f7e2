"""Repository base: advanced-alchemy's sync repository (psycopg2 and sqlite3 are sync drivers)."""

from typing import TypeVar

from advanced_alchemy.repository import SQLAlchemySyncRepository

from app.domains.base.models import TableBase

ModelT = TypeVar("ModelT", bound=TableBase)


class Repository(SQLAlchemySyncRepository[ModelT]):
    """Shared by every domain repository; declare `model_type` (and `match_fields` when upserting)."""
