"""Dependency providers. All async: building a session or a service does no I/O, and an async
provider runs inline instead of hopping into the worker pool (see docs/architecture.md)."""

from collections.abc import AsyncGenerator
from datetime import datetime

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery
from sqlalchemy.orm import Session

from app.domains.base.authorization import AuthorizationContext
from app.domains.base.filters import ListParams
from app.domains.users.clerk import ClerkSync
from app.domains.users.service import APIKeyService, UserService


async def provide_db_session(state: State) -> AsyncGenerator[Session]:
    """A request's session. Handlers commit in their own thread (services use `auto_commit`);
    closing here only returns a connection a read left checked out."""
    session = state.database.session()
    try:
        yield session
    finally:
        session.close()


async def provide_auth(request: Request) -> AuthorizationContext:
    return request.user


async def provide_list_params(
    limit: FromQuery[int] = 20,
    offset: FromQuery[int] = 0,
    search: FromQuery[str | None] = None,
    order_by: FromQuery[str] = "created_at",
    sort_order: FromQuery[str] = "desc",
    created_after: FromQuery[datetime | None] = None,
    created_before: FromQuery[datetime | None] = None,
) -> ListParams:
    """Pagination, search, sort and created_at range; validated by the domain's `ListParams`."""
    return ListParams.model_validate(
        {
            "limit": limit,
            "offset": offset,
            "search": search,
            "order_by": order_by,
            "sort_order": sort_order,
            "created_after": created_after,
            "created_before": created_before,
        }
    )


async def provide_users_service(db_session: NamedDependency[Session]) -> UserService:
    return UserService(db_session, auto_commit=True)


async def provide_api_keys_service(db_session: NamedDependency[Session], state: State) -> APIKeyService:
    return APIKeyService(db_session, hasher=state.api_key_hasher, auto_commit=True)


async def provide_clerk_sync(db_session: NamedDependency[Session]) -> ClerkSync:
    return ClerkSync(db_session, auto_commit=True)


app_dependencies = {
    "db_session": Provide(provide_db_session),
    "auth": Provide(provide_auth),
    "list_params": Provide(provide_list_params),
}
