"""Dependency providers: the request's unit of work, the services on it, list parameters.

All async: none does I/O (a session takes its connection only when first used, in the handler's
thread), and an async provider runs inline on the event loop instead of costing a thread hop.
"""

import inspect
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from pydantic import BaseModel

from app.api.request_unit_of_work import RequestUnitOfWork, provide_unit_of_work
from app.domains.base.lists import ListParams
from app.domains.base.service import Service

UnitOfWorkDep = NamedDependency[RequestUnitOfWork]
"""`uow: UnitOfWorkDep` in a handler: the request's unit of work (`uow.actor`, `uow.service(...)`)."""


def provide_service(service_type: type[Service[Any]]) -> Provide:
    """`{"users": provide_service(UserService)}`: the service, bound to the request's unit of work."""

    async def provider(uow: UnitOfWorkDep) -> Any:
        return uow.service(service_type)

    return Provide(provider)


# ListParams' constraints as pydantic states them in its JSON schema -> the QueryParameter keyword
# that states the same in the OpenAPI. Every keyword Litestar can state is here.
_CONSTRAINTS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minItems": "min_items",
    "maxItems": "max_items",
    "format": "format",
}
# What else a field's schema says, none of it a constraint (the annotation gives types and enums).
_DESCRIPTIVE = frozenset({"type", "title", "description", "default", "enum", "const", "anyOf", "items", "$ref"})


def query_constraints(field_schema: dict[str, Any]) -> dict[str, Any]:
    """The QueryParameter keywords stating a field's constraints, read from its JSON schema (an
    optional field's are on its non-null branch). A constraint the OpenAPI cannot state stops the
    app at start-up: the document never promises less than the validation checks."""
    branches = [field_schema, *(branch for branch in field_schema.get("anyOf", []) if branch.get("type") != "null")]
    constraints = {}
    for branch in branches:
        for keyword, value in branch.items():
            if keyword in _CONSTRAINTS:
                constraints[_CONSTRAINTS[keyword]] = value
            elif keyword not in _DESCRIPTIVE:
                raise TypeError(f"the constraint {keyword!r} cannot be stated by a query parameter")
    return constraints


def query_parameters(model: type[BaseModel], annotations: dict[str, Any]) -> list[inspect.Parameter]:
    """One keyword-only query parameter per field of `model`: its name, default, description and
    constraints; `annotations` replaces a field's type (e.g. an enum of the sortable fields). A
    datetime is passed on as text (`format: date-time`): the model parses it, strictly."""
    schema = model.model_json_schema()["properties"]
    parameters = []
    for name, field in model.model_fields.items():
        try:
            constraints = query_constraints(schema[name])
        except TypeError as error:
            raise TypeError(f"{model.__name__}.{name}: {error}") from None
        annotation = annotations.get(name, field.annotation)
        if annotation == datetime | None:
            annotation = str | None
        query = QueryParameter(description=field.description, **constraints)
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=Annotated[annotation, query]
            )
        )
    return parameters


def provide_list_params(service_type: type[Service[Any]]) -> Provide:
    """`ListParams` read from the query string. Names, defaults, constraints and descriptions come
    from `ListParams` itself; `order_by` is the enum of the service's `sortable_fields`."""
    sortable = Literal[tuple(sorted(service_type.sortable_fields))]  # type: ignore[valid-type]  # built at runtime
    parameters = query_parameters(ListParams, {"order_by": sortable})

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
