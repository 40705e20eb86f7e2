"""Service base: the one write path, with authorization scoping and safe partial updates."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Generic
from uuid import UUID

from advanced_alchemy.exceptions import IntegrityError
from advanced_alchemy.service import SQLAlchemySyncRepositoryService
from pydantic import BaseModel
from sqlalchemy import ColumnElement
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.domains.base.authorization import AuthorizationContext, ScopeStrategy
from app.domains.base.exceptions import ConflictError, DomainValidationError, NotFoundError
from app.domains.base.filters import ListParams
from app.domains.base.repository import ModelT, Repository


class Service(SQLAlchemySyncRepositoryService[ModelT, Repository[ModelT]], Generic[ModelT]):
    """Declare `repository_type`, `scope_strategy`, and the fields lists may sort and search on.

    Writes flush; they commit only when the service was built with `auto_commit=True` (the API
    does, so a request's work commits in the worker thread that did it). Callers that combine
    several writes build it with `auto_commit=False` and call `commit()` once.
    """

    scope_strategy: ClassVar[ScopeStrategy]
    sortable_fields: ClassVar[frozenset[str]] = frozenset({"created_at", "updated_at"})
    search_fields: ClassVar[frozenset[str]] = frozenset()
    # Which unique column a violation names (in the driver's message) -> what to tell the caller.
    conflict_messages: ClassVar[dict[str, str]] = {}

    def __init__(self, session: Session, **kwargs: Any) -> None:
        kwargs.setdefault("auto_refresh", False)  # every default is set in Python: no reload needed
        super().__init__(session=session, **kwargs)

    @property
    def session(self) -> Session:
        return self.repository.session

    def commit(self) -> None:
        self.session.commit()

    # -- reads, limited to what the actor may see ------------------------------------------

    def visible_filters(self, context: AuthorizationContext) -> list[ColumnElement[bool]]:
        """Rows the actor may see: the domain's own filters plus the scope strategy's."""
        filters = self.default_filters()
        if (row_filter := self.scope_strategy.row_filter(context, self.model_type)) is not None:
            filters.append(row_filter)
        return filters

    def default_filters(self) -> list[ColumnElement[bool]]:
        """Rows that exist for every reader (override to hide soft-deleted rows)."""
        return []

    def get_visible(self, context: AuthorizationContext, item_id: UUID) -> ModelT:
        """The row, or NotFoundError when it does not exist or the actor may not see it."""
        item = self.get_one_or_none(self.model_type.id == item_id, *self.visible_filters(context))
        if item is None:
            raise NotFoundError(f"{self.model_type.__name__} {item_id} not found")
        return item

    def list_visible(self, context: AuthorizationContext, params: ListParams) -> tuple[list[ModelT], int]:
        if params.order_by not in self.sortable_fields:
            raise DomainValidationError(
                "cannot sort on this field",
                [{"key": "order_by", "message": f"one of {sorted(self.sortable_fields)}"}],
            )
        items, total = self.get_many_and_count(*self.visible_filters(context), *params.to_filters(self.search_fields))
        return list(items), total

    # -- writes ------------------------------------------------------------------------------

    def create(self, data: Any, **kwargs: Any) -> ModelT:
        with self._conflicts_as_domain_errors():
            return super().create(data, **kwargs)

    def update(self, data: Mapping[str, Any] | BaseModel, item_id: Any = None, **kwargs: Any) -> ModelT:
        """Partial update by id: only the fields supplied change (see `apply_changes`)."""
        item = self.get_one_or_none(self.model_type.id == item_id)
        if item is None:
            raise NotFoundError(f"{self.model_type.__name__} {item_id} not found")
        return self.apply_changes(item, data, **kwargs)

    def apply_changes(self, item: ModelT, data: Mapping[str, Any] | BaseModel, **kwargs: Any) -> ModelT:
        """Set only the supplied fields on a loaded row, through the `to_model_on_update` hook.

        advanced-alchemy's stock update turns a dict into a SQLModel row first, which fills in
        every default (a new id, created_at...) and copies them onto the stored row.
        """
        changes = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else dict(data)
        for name, value in self.to_model_on_update(changes).items():
            setattr(item, name, value)
        with self._conflicts_as_domain_errors():
            return self.repository.update(item, **kwargs)

    @contextmanager
    def _conflicts_as_domain_errors(self) -> Iterator[None]:
        """A unique or foreign-key violation becomes a ConflictError.

        advanced-alchemy wraps every statement error (an unreachable database, a missing table...)
        in its IntegrityError; only a real integrity violation from the database is a conflict.
        The transaction is the caller's: it rolls back (or wraps the write in a savepoint).
        """
        try:
            yield
        except IntegrityError as error:
            if not isinstance(error.__cause__, sa_exc.IntegrityError):
                raise
            message = str(error.__cause__.orig)
            detail = next(
                (text for column, text in self.conflict_messages.items() if column in message),
                "the change conflicts with an existing row",
            )
            raise ConflictError(detail) from error
