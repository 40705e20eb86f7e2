"""Route decorators for handlers that work on the database: `get`, `post`, `patch`, `delete`.

Each wraps Litestar's decorator of the same name and runs the handler as **one worker-thread call
inside the request's unit of work**: authenticate the credential (the same session), check the
route's requirement, run the handler, commit (or roll back on error), close the session. One hop and
one session per request, no connection crossing back to the event loop; one transaction for a POST,
PATCH or DELETE, while a GET's statements each commit on their own on PostgreSQL (`read_only`: see
`UnitOfWork`), so a GET handler never changes rows that must land together.

    @get("/{user_id:uuid}", operation_id="getUser", requires=UserPermission.USERS_READ)
    def get_user(self, users: Users, user_id: FromPath[UUID]) -> UserPublic: ...

`requires` names a permission, `admin=True` reserves the route to admins, `public=True` skips
authentication (the actor is anonymous: it sees no row). `errors` lists the statuses besides the
ones every route may return, so the OpenAPI document states them all. `idempotent=True` (a creating
POST) accepts an `Idempotency-Key` header (`app.api.idempotency`); requests without one take the
same path as on any other route. The operation's summary is its id in words (app.api.openapi), its
description the handler's docstring and who may call it; `document=` adds what the handler reads
without declaring it (raw headers, a raw body) to the OpenAPI document.
"""

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import litestar
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel
from sqlmodel import SQLModel

from app.api import idempotency as idempotency_header
from app.api.dependencies import UnitOfWorkDep
from app.api.problems import PROBLEM_MEDIA_TYPE, ProblemDetails
from app.api.request_unit_of_work import RequestUnitOfWork
from app.domains.base.actors import Actor, require_admin, require_permission
from app.domains.base.permissions import permissions

Handler = Callable[..., Any]
# The opt key of what a route documents beyond its signature (`document=`): `parameters` it reads
# itself and a `requestBody` it reads raw, merged into its operation by app.api.openapi.
DOCUMENTED_ONLY = "openapi"
# The opt key that marks a route made here: its handler runs in a request unit of work, which
# verifies the credential.
RUNS_IN_UNIT_OF_WORK = "runs_in_unit_of_work"


# What each problem status means here, for the OpenAPI document.
PROBLEM_STATUS_MEANINGS = {
    400: "The request is malformed: `errors` names each invalid field or parameter",
    401: "No valid credential: `reason` says which check failed",
    403: "The credential may not do this: `required_permission` or `reason` says why",
    404: "No such row, or one the caller may not see",
    408: "The request body did not arrive in time",
    409: "The change conflicts with a row or with the state of one",
    413: "The request body is too large",
    422: "Well-formed, but against a business rule: `errors` names the fields",
    429: "Too many failed attempts: wait `Retry-After` seconds",
    503: "The database is unavailable (retry after `Retry-After` seconds)",
}


def problem_responses(statuses: set[int]) -> dict[int, ResponseSpec]:
    """No generated examples: Litestar's are random strings and numbers (`"status": 2562`)."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            media_type=PROBLEM_MEDIA_TYPE,
            description=PROBLEM_STATUS_MEANINGS.get(status, HTTPStatus(status).phrase),
            generate_examples=False,
        )
        for status in sorted(statuses)
    }


def description_of(fn: Handler, requires: str | None, admin: bool, public: bool) -> str:
    """The handler's docstring, then who may call it, from the route's own requirements (never
    typed twice)."""
    parts = [inspect.cleandoc(fn.__doc__)] if fn.__doc__ else []
    if public:
        parts.append("Public: no credential is needed.")
    if requires is not None:
        parts.append(f"Requires the permission `{requires}`" + (" and the admin role." if admin else "."))
    elif admin:
        parts.append("Requires the admin role.")
    return "\n\n".join(parts)


def tables_in(annotation: Any, seen: set[int] | None = None) -> list[type]:
    """The table classes a type names at any depth: `User`, `list[User]`, `Page[User]`,
    `User | None`, and the fields of a schema or a dataclass (`class Out(BaseModel): owner: User`)."""
    seen = set() if seen is None else seen
    if id(annotation) in seen:
        return []
    seen.add(id(annotation))
    if inspect.isclass(annotation) and issubclass(annotation, SQLModel) and hasattr(annotation, "__table__"):
        return [annotation]
    found = [table for argument in typing.get_args(annotation) for table in tables_in(argument, seen)]
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        found += [table for field in annotation.model_fields.values() for table in tables_in(field.annotation, seen)]
    elif inspect.isclass(annotation) and dataclasses.is_dataclass(annotation):
        found += [table for hint in typing.get_type_hints(annotation).values() for table in tables_in(hint, seen)]
    return found


def _check(actor: Actor, requires: str | None, admin: bool) -> None:
    if requires is not None:
        require_permission(actor, requires)
    if admin:
        require_admin(actor)


def _in_unit_of_work(fn: Handler, requires: str | None, admin: bool, public: bool, idempotent: bool) -> Handler:
    signature = inspect.signature(fn)
    wants_uow = "uow" in signature.parameters
    if tables := tables_in(signature.return_annotation):
        raise TypeError(
            f"{fn.__qualname__} returns the table {tables[0].__name__}; return its Public schema (tables leak columns)"
        )

    @functools.wraps(fn)
    def handler(*args: Any, uow: RequestUnitOfWork, **kwargs: Any) -> Any:
        with uow:  # commits when the handler returns, rolls back when it raises; closes either way
            _check(uow.authenticate(anonymous=public), requires, admin)
            return fn(*args, uow=uow, **kwargs) if wants_uow else fn(*args, **kwargs)

    @functools.wraps(fn)
    def idempotent_handler(*args: Any, uow: RequestUnitOfWork, **kwargs: Any) -> Any:
        with uow:  # the key's claim and stored response commit (or roll back) with the operation
            _check(uow.authenticate(anonymous=public), requires, admin)
            if uow.idempotency is None:  # no Idempotency-Key: as any other route
                return fn(*args, uow=uow, **kwargs) if wants_uow else fn(*args, **kwargs)
            call = (
                functools.partial(fn, *args, uow=uow, **kwargs) if wants_uow else functools.partial(fn, *args, **kwargs)
            )
            return uow.idempotency.respond(uow, call)

    wrapper = idempotent_handler if idempotent else handler
    if not wants_uow:  # Litestar injects the unit of work into the wrapper all the same
        uow_parameter = inspect.Parameter("uow", inspect.Parameter.KEYWORD_ONLY, annotation=UnitOfWorkDep)
        # `__signature__` is what inspect (and so Litestar) reads; mypy does not know functions carry it.
        wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), uow_parameter])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**fn.__annotations__, "uow": UnitOfWorkDep}
    return wrapper


def _route(litestar_decorator: Callable[..., Any], *, body: bool = False) -> Callable[..., Callable[[Handler], Any]]:
    def decorator(
        path: str,
        *,
        operation_id: str,
        requires: str | None = None,
        admin: bool = False,
        public: bool = False,
        idempotent: bool = False,
        errors: tuple[int, ...] = (),
        document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Callable[[Handler], Any]:
        if requires is not None and (unknown := permissions.unknown([requires])):
            raise ValueError(f"{operation_id}: no domain declares the permission {unknown[0]!r}")
        statuses = {400, 503, *errors}
        if body:  # too large, or too slow to arrive (app.api.request_body)
            statuses |= {408, 413}
        if not public:
            statuses |= {401, 403, 429}
        if "{" in path:
            statuses.add(404)
        kwargs.setdefault("opt", {})[RUNS_IN_UNIT_OF_WORK] = True
        if document is not None:
            kwargs["opt"][DOCUMENTED_ONLY] = document
        if public:
            kwargs["opt"]["exclude_from_auth"] = True
            kwargs.setdefault("security", [{}])
        if idempotent:  # the key's header, its 409 and 422, and the replay's response header
            statuses |= {409, 422}
            kwargs["opt"][idempotency_header.IDEMPOTENT] = True
            kwargs.setdefault("operation_class", idempotency_header.IdempotentOperation)
            kwargs["response_headers"] = [
                *(kwargs.get("response_headers") or []),
                idempotency_header.REPLAYED_RESPONSE_HEADER,
            ]

        def wrap(fn: Handler) -> Any:
            description = description_of(fn, requires, admin, public)
            if idempotent:
                description = f"{description}\n\n{idempotency_header.NOTE}"
            kwargs.setdefault("description", description)
            return litestar_decorator(
                path,
                operation_id=operation_id,
                sync_to_thread=True,
                responses=problem_responses(statuses),
                **kwargs,
            )(_in_unit_of_work(fn, requires, admin, public, idempotent))

        return wrap

    return decorator


def ensure_every_route_verifies_credentials(app: litestar.Litestar) -> None:
    """Fail closed, at start-up: the middleware only reads a credential; it is verified inside a
    route made by the decorators above. A route made with Litestar's own decorators, and not marked
    `opt={"exclude_from_auth": True}`, would serve anyone holding a well-formed fake key."""
    for route in app.routes:
        if route.path.startswith("/schema"):
            continue
        for handler in getattr(route, "route_handlers", []):
            opt = handler.opt
            if handler.http_methods == {"OPTIONS"} or opt.get(RUNS_IN_UNIT_OF_WORK) or opt.get("exclude_from_auth"):
                continue
            raise RuntimeError(
                f"{route.path} ({handler.handler_name}) does not verify credentials: declare it with "
                "the decorators of app.api.route_decorators, or mark it opt={'exclude_from_auth': True} if it is public"
            )


get = _route(litestar.get)
post = _route(litestar.post, body=True)
patch = _route(litestar.patch, body=True)
delete = _route(litestar.delete)
