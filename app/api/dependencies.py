"""Dependency providers: the request's unit of work, the services on it, list parameters.

All async: none does I/O (a session takes its connection only when first used, in the handler's
thread), and an async provider runs inline on the event loop instead of costing a thread hop.
"""

import inspect
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import annotated_types
from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from app.api.auth import SAFE_METHODS, Credential, RequestUnitOfWork
from app.api.request_log import UNIT_OF_WORK
from app.domains.base.exceptions import NotFoundError
from app.domains.base.lists import ListParams
from app.domains.base.service import Service

UnitOfWorkDep = NamedDependency[RequestUnitOfWork]
"""`uow: UnitOfWorkDep` in a handler: the request's unit of work (`uow.actor`, `uow.service(...)`)."""


async def provide_unit_of_work(request: Request[Any, Any, Any]) -> RequestUnitOfWork:
    _require_canonical_uuids(request)
    credential = request.scope.get("auth")  # absent on public routes
    credential = credential if isinstance(credential, Credential) else None
    read_only = request.method in SAFE_METHODS  # GET routes read: no transaction (see UnitOfWork)
    client = request.client.host if request.client else None
    uow = RequestUnitOfWork(request.app.state.container, credential, read_only=read_only, client=client)
    request.scope["state"][UNIT_OF_WORK] = uow  # the access log names its actor
    return uow


def _require_canonical_uuids(request: Request[Any, Any, Any]) -> None:
    """An id in the path is only its canonical hyphenated form: Litestar's `uuid` type also takes
    `{...}`, `urn:uuid:` and unhyphenated spellings, which would make one row reachable at several
    URLs (and confuse caches and logs). Any other spelling is a 404."""
    segments = request.url.path.lower().split("/")
    for value in request.path_params.values():
        if isinstance(value, UUID) and str(value) not in segments:
            raise NotFoundError("not found")


def provide_service(service_type: type[Service[Any]]) -> Provide:
    """`{"users": provide_service(UserService)}`: the service, bound to the request's unit of work."""

    async def provider(uow: UnitOfWorkDep) -> Any:
        return uow.service(service_type)

    return Provide(provider)


_CONSTRAINTS = {
    annotated_types.Ge: "ge",
    annotated_types.Le: "le",
    annotated_types.Gt: "gt",
    annotated_types.Lt: "lt",
    annotated_types.MinLen: "min_length",
    annotated_types.MaxLen: "max_length",
}


def provide_list_params(service_type: type[Service[Any]]) -> Provide:
    """`ListParams` read from the query string. Names, defaults, bounds and descriptions come from
    `ListParams` itself; `order_by` is the enum of the service's `sortable_fields`."""
    sortable = Literal[tuple(sorted(service_type.sortable_fields))]  # type: ignore[valid-type]  # built at runtime
    parameters = []
    for name, field in ListParams.model_fields.items():
        constraints = {
            keyword: getattr(item, keyword)
            for item in field.metadata
            for kind, keyword in _CONSTRAINTS.items()
            if isinstance(item, kind)
        }
        annotation = sortable if name == "order_by" else field.annotation
        extra: dict[str, Any] = {}
        if annotation == datetime | None:  # passed on as text: ListParams parses it, strictly
            annotation, extra = str | None, {"format": "date-time"}
        query = QueryParameter(description=field.description, **constraints, **extra)
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=Annotated[annotation, query]
            )
        )

    async def provider(**values: Any) -> ListParams:
        return ListParams.model_validate(values)

    # `__signature__` is what inspect (and so Litestar) reads; mypy does not know functions carry it.
    provider.__signature__ = inspect.Signature(parameters, return_annotation=ListParams)  # type: ignore[attr-defined]
    provider.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters} | {
        "return": ListParams
    }
    return Provide(provider)


def service_dependencies(name: str, service_type: type[Service[Any]]) -> dict[str, Provide]:
    """A controller's `dependencies`: its service under `name`, and `list_params` for its lists."""
    return {name: provide_service(service_type), "list_params": provide_list_params(service_type)}


app_dependencies = {"uow": Provide(provide_unit_of_work)}
