"""Repository base: advanced-alchemy's sync repository, with the row policy in every statement.

Errors are not wrapped (`wrap_exceptions=False`): a statement's error is SQLAlchemy's own (an
`IntegrityError`, an `OperationalError` for an outage...), which the service and the adapters read
directly, and a missing row is the domain's `NotFoundError`, the only not-found type there is.
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from advanced_alchemy.repository import SQLAlchemySyncRepository
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql, sqlite

from app.domains.base.exceptions import NotFoundError
from app.domains.base.models import TableBase

ModelT = TypeVar("ModelT", bound=TableBase)


def _no_filters() -> list[ColumnElement[bool]]:
    return []


class Repository(SQLAlchemySyncRepository[ModelT]):
    """Declare `model_type` (and `match_fields` when upserting).

    `row_filters` is called for every statement advanced-alchemy builds (get, get_one, list, count,
    exists, delete, delete_many, delete_where, update_many): its conditions are added to each.
    """

    def __init__(self, *, row_filters: Callable[[], list[ColumnElement[bool]]] = _no_filters, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "wrap_exceptions": False})
        self.row_filters = row_filters

    # advanced-alchemy's is a staticmethod raising its own NotFoundError; this one names the model.
    def check_not_found(self, item_or_none: ModelT | None) -> ModelT:  # type: ignore[override]
        """`get`, `get_one`, `update` and `delete` of a row that is not there, or not visible."""
        if item_or_none is None:
            raise NotFoundError(f"{self.model_type.__name__} not found")
        return item_or_none

    # advanced-alchemy's is a staticmethod; this one needs the instance's row filters.
    def _get_base_stmt(self, *, statement: Any, loader_options: Any, execution_options: Any) -> Any:  # type: ignore[override]
        statement = super()._get_base_stmt(
            statement=statement, loader_options=loader_options, execution_options=execution_options
        )
        conditions = self.row_filters()
        return statement.where(*conditions) if conditions else statement

    def insert_if_absent(self, values: dict[str, Any], unique_columns: Sequence[str]) -> ModelT | None:
        """INSERT ... ON CONFLICT DO NOTHING RETURNING: the new row, or None if the key exists.

        `unique_columns` names the unique constraint (one column or several) whose conflict skips it.
        Race-free "create unless it exists": a concurrent transaction inserting the same key makes
        this one wait for it, then do nothing. Not filtered by the row policy: callers are internal.
        """
        row = self.model_type(**values)  # fills the Python-side defaults (id, timestamps)
        dialect = self.session.get_bind().dialect.name
        statement = _insert(self.model_type, dialect).values(row.model_dump())
        statement = statement.on_conflict_do_nothing(index_elements=list(unique_columns))
        return self.session.scalars(statement.returning(self.model_type)).one_or_none()

    def insert_many_if_absent(self, rows: Sequence[ModelT]) -> list[Any]:
        """One INSERT ... ON CONFLICT DO NOTHING RETURNING id for many rows (executed in pages by
        SQLAlchemy): the ids of the rows inserted; a row that would break any unique constraint is
        skipped. Not filtered by the row policy: callers check it (see `Service.create_many_if_absent`)."""
        if not rows:
            return []
        table = self.model_type.__table__
        statement = _insert(table, self.session.get_bind().dialect.name).on_conflict_do_nothing()
        return list(self.session.execute(statement.returning(table.c.id), [row.model_dump() for row in rows]).scalars())


def _insert(target: Any, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT construct, the one with ON CONFLICT DO NOTHING."""
    if dialect == "postgresql":
        return postgresql.insert(target)
    if dialect == "sqlite":
        return sqlite.insert(target)
    raise NotImplementedError(f"no INSERT ... ON CONFLICT DO NOTHING for {dialect}")
