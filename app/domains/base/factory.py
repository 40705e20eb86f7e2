"""Test-data factories for SQLModel tables (polyfactory), persisted through a real session."""

from typing import Any, Generic, TypeVar

from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory

from app.domains.base.models import TableBase, utcnow

T = TypeVar("T", bound=TableBase)


class TableFactory(SQLAlchemyFactory[T], Generic[T]):
    """Build rows with `build()`; `create_sync()` adds and commits them with `__session__`."""

    __is_base_factory__ = True
    __set_relationships__ = False
    __check_model__ = False

    @classmethod
    def created_at(cls) -> Any:
        return utcnow()

    @classmethod
    def updated_at(cls) -> Any:
        return utcnow()
