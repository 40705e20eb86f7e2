"""Services: the one write path, bound to an actor whose row policy every query obeys.

There is one way to get a service, in the API, the CLI, flows and tests alike:

    uow.service(UserService)                             # acting as the unit's actor
    uow.service(UserService, actor=Actor.system())       # past the row policy (verified input, internal lookups)
    uow.service(APIKeyService, actor=Actor.on_behalf_of(user.id, user.role))   # as that user

The unit of work builds it on first use (once per actor) on its session; a service with
dependencies declares them as keyword-only, typed arguments, and the bootstrap registers the factory
that passes them (`functools.partial(APIKeyService, hasher=..., attempts=...)`, `app/bootstrap.py`).
Going past the policy is always `actor=Actor.system()` (or a unit made for it): grep for it.

`Service[Model]` serves one table: advanced-alchemy's inherited reads and writes (get, get_one,
get_many, count, exists, update, delete, delete_many, delete_where...) all carry the domain's
`policy`, so a caller cannot forget it. `ServiceBase` is for use cases that are not one table's
(Clerk's deliveries, say): the same construction, actor and session.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any, ClassVar, Generic, cast

from advanced_alchemy.service import SQLAlchemySyncRepositoryService
from pydantic import BaseModel
from sqlalchemy import ColumnElement, CursorResult, Executable, asc, desc, func, literal, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlmodel import col

from app.domains.base.actors import Actor
from app.domains.base.exceptions import DomainValidationError, NotFoundError, PermissionDeniedError
from app.domains.base.integrity import as_domain_error
from app.domains.base.lists import COUNT_CAP, ListParams, Page
from app.domains.base.policies import RowPolicy
from app.domains.base.repository import ModelT, Repository
from app.domains.base.unit_of_work import UnitOfWork


class ServiceBase:
    """Built by a unit of work (`uow.service(...)`), on its session, acting as `actor` (None: the
    unit's actor, read when first needed: a request's is known only once it has authenticated).
    Dependencies come after, keyword-only and typed, passed by the bootstrap's factory."""

    def __init__(self, uow: UnitOfWork, actor: Actor | None = None) -> None:
        self.uow = uow
        self._actor = actor

    @property
    def actor(self) -> Actor:
        return self._actor or self.uow.actor

    @property
    def session(self) -> Session:
        return self.uow.session


class Service(ServiceBase, SQLAlchemySyncRepositoryService[ModelT, Repository[ModelT]], Generic[ModelT]):
    """Declare `repository_type`, `policy`, and the fields lists may sort and search on.

    advanced-alchemy's __init__ builds the repository at once (~50-80 µs); `ServiceBase.__init__`
    replaces it, and the repository is built on first use, so a request that needs none (`/me`)
    does not pay for it.
    """

    policy: ClassVar[RowPolicy]
    sortable_fields: ClassVar[frozenset[str]] = frozenset({"created_at", "updated_at"})
    search_fields: ClassVar[frozenset[str]] = frozenset()
    # Which unique column a violation names (in the driver's message) -> what to tell the caller
    # (see `integrity.as_domain_error`).
    conflict_messages: ClassVar[dict[str, str]] = {}

    @cached_property
    def _repository_instance(self) -> Repository[ModelT]:  # type: ignore[override]  # a lazy attribute
        return self.repository_type(
            session=self.uow.session,
            auto_refresh=False,  # every default is set in Python: no reload needed
            auto_commit=False,  # the unit of work commits, not the service
            load=self.loader_options,
            execution_options=self.execution_options,
            uniquify=self._get_uniquify(),
            count_with_window_function=self.count_with_window_function,
            row_filters=self.row_filters,
        )

    @property
    def model_type(self) -> type[ModelT]:
        return self.repository_type.model_type

    def affected_rows(self, statement: Executable) -> int:
        """Run a bulk UPDATE or DELETE: the number of rows it matched."""
        result = self.session.execute(statement)
        if not isinstance(result, CursorResult):  # typed as a Result; an UPDATE's or DELETE's is this one
            raise TypeError(f"{type(result).__name__} reports no row count: pass an UPDATE or a DELETE")
        return result.rowcount

    # -- the policy ------------------------------------------------------------------------------

    def row_filters(self) -> list[ColumnElement[bool]]:
        """Rows this service may touch: the domain's own filters plus the policy's for the actor."""
        filters = self.default_filters()
        if (policy_filter := self.policy.row_filter(self.actor, self.model_type)) is not None:
            filters.append(policy_filter)
        return filters

    def default_filters(self) -> list[ColumnElement[bool]]:
        """Rows that exist for every reader (override to hide soft-deleted rows)."""
        return []

    def _ensure_allowed(self, row: ModelT) -> ModelT:
        if not self.policy.allows(self.actor, row):
            raise PermissionDeniedError(f"this {self.model_type.__name__} is not yours to write")
        return row

    # -- reads -----------------------------------------------------------------------------------

    def page(self, params: ListParams, *where: ColumnElement[bool]) -> Page[ModelT]:
        """One page in a stable order, with a total that stops counting at COUNT_CAP; `where`
        narrows the rows further (the members of one organization, say)."""
        if params.order_by not in self.sortable_fields:
            raise DomainValidationError(
                "cannot sort on this field",
                [{"key": "order_by", "message": f"one of {', '.join(sorted(self.sortable_fields))}"}],
            )
        model = self.model_type
        conditions = [*self.row_filters(), *where, *params.conditions(model, self.search_fields)]
        direction = desc if params.sort_order == "desc" else asc
        statement = (
            select(model)
            .where(*conditions)
            .order_by(direction(getattr(model, params.order_by)), direction(col(model.id)))
            .limit(params.limit)
            .offset(params.offset)
        )
        items = list(self.session.scalars(statement))
        if (items and len(items) < params.limit) or (not items and params.offset == 0):
            # The last page: the total is known without counting.
            return Page(items, params.limit, params.offset, params.offset + len(items), total_is_exact=True)
        capped = select(literal(1)).select_from(model).where(*conditions).limit(COUNT_CAP + 1).subquery()
        total = self.session.scalar(select(func.count()).select_from(capped)) or 0
        return Page(items, params.limit, params.offset, min(total, COUNT_CAP), total_is_exact=total <= COUNT_CAP)

    # -- writes: each checks the row against the policy ------------------------------------------
    # (`type: ignore[override]`: these take fewer options than advanced-alchemy's, on purpose)

    def create(self, data: Any, **kwargs: Any) -> ModelT:
        """`to_model_on_create` receives a dict: a schema or a table instance is dumped first (the
        fields set on it; unset ones are left out), so its rules and normalisation apply to every
        form. Returns the row created (a table instance passed in is not the one stored)."""
        row = self._ensure_allowed(self.to_model(self._as_dict(data), "create"))
        with self._integrity_errors_as_domain_errors():
            return self.repository.add(row, **kwargs)

    def create_many(self, data: Iterable[Any], **_: Any) -> list[ModelT]:  # type: ignore[override]
        return [self.create(item) for item in data]

    def create_many_if_absent(self, data: Iterable[Any]) -> list[Any]:
        """Bulk create: each item passes `to_model_on_create` (the domain's rules and normalisation)
        and the policy as in `create`, then one INSERT per page skips the rows that would break a
        unique constraint. Returns the ids of the rows created; nothing is loaded into the session.

        Rows are built with `model_construct` (the same defaults, no ORM instrumentation): building
        SQLModel table instances one by one costs ~5x more than the rest of the insert.
        """
        construct = cast("Callable[..., ModelT]", self.model_type.model_construct)  # typed as the base class's
        rows = [
            self._ensure_allowed(construct(**cast("dict[str, Any]", self.to_model_on_create(values))))
            for values in map(self._as_dict, data)
        ]
        with self._integrity_errors_as_domain_errors():  # a missing foreign key still raises
            return self.repository.insert_many_if_absent(rows)

    def update(self, data: Mapping[str, Any] | BaseModel | ModelT, item_id: Any = None, **_: Any) -> ModelT:  # type: ignore[override]
        """Partial update of a row the actor may see: only the fields supplied change."""
        if item_id is None:
            item_id = data.get("id") if isinstance(data, Mapping) else getattr(data, "id", None)
        if item_id is None:
            raise DomainValidationError("an update needs the row's id", [{"key": "id", "message": "required"}])
        return self.apply_changes(self.get(item_id), data)

    def update_many(self, data: Iterable[Any], **_: Any) -> list[ModelT]:  # type: ignore[override]
        return [self.update(item) for item in data]

    def upsert(self, data: Any, item_id: Any = None, *, match_fields: Any = None, **_: Any) -> ModelT:
        """Update the visible row matching `item_id` or `match_fields`, else create one."""
        values = self._as_dict(data)
        if item_id is None and match_fields is None:
            item_id = values.get("id")
        existing = None
        if item_id is not None:
            existing = self.get_one_or_none(self.model_type.id == item_id)
        elif match_fields is not None:
            existing = self._matching(match_fields, values)
        return self.apply_changes(existing, values) if existing is not None else self.create(values)

    def upsert_many(self, data: Iterable[Any], **kwargs: Any) -> list[ModelT]:  # type: ignore[override]
        return [self.upsert(item, **kwargs) for item in data]

    def get_or_upsert(self, match_fields: Any = None, upsert: bool = True, **values: Any) -> tuple[ModelT, bool]:  # type: ignore[override]
        existing = self._matching(match_fields or values, values)
        if existing is None:
            return self.create(values), True
        return (self.apply_changes(existing, values) if upsert else existing), False

    def get_and_update(self, match_fields: Any = None, **values: Any) -> tuple[ModelT, bool]:  # type: ignore[override]
        existing = self._matching(match_fields or values, values)
        if existing is None:
            raise NotFoundError(f"{self.model_type.__name__} not found")
        return self.apply_changes(existing, values), True

    def apply_changes(self, row: ModelT, data: Mapping[str, Any] | BaseModel | ModelT) -> ModelT:
        """Set only the supplied fields on a loaded row (through `to_model_on_update`), then flush.

        advanced-alchemy's stock update builds a SQLModel row from the data first, which fills in
        every default (a new id, created_at...) and copies them onto the stored row.
        """
        supplied = self._as_dict(data)
        supplied.pop("id", None)
        changes = self.to_model_on_update(supplied)
        if not isinstance(changes, Mapping):
            raise TypeError(f"{type(self).__name__}.to_model_on_update must return the changes as a mapping")
        for name, value in changes.items():
            setattr(row, name, value)
        self._ensure_allowed(row)
        with self._integrity_errors_as_domain_errors():
            self.session.flush()
        return row

    def _matching(self, match_fields: str | Iterable[str], values: Mapping[str, Any]) -> ModelT | None:
        """The visible row whose `match_fields` equal those of `values` (advanced-alchemy's forms)."""
        names = [match_fields] if isinstance(match_fields, str) else list(match_fields)
        return self.get_one_or_none(**{name: values[name] for name in names})

    @staticmethod
    def _as_dict(data: Any) -> dict[str, Any]:
        if isinstance(data, BaseModel):
            return data.model_dump(exclude_unset=True)
        return dict(data)

    @contextmanager
    def _integrity_errors_as_domain_errors(self) -> Iterator[None]:
        """A unique or foreign-key violation becomes a ConflictError (409), a NOT NULL or check
        violation a DomainValidationError naming the field (422). The transaction is the unit of
        work's: it rolls back (or the caller used a savepoint)."""
        try:
            yield
        except sa_exc.IntegrityError as error:
            raise as_domain_error(error, self.conflict_messages) from error
