"""Route guards: they apply the domain's authorization functions to the request's actor.

Async on purpose: they do no I/O, and a sync guard would cost a hop into the worker pool.
"""

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from app.domains.base.authorization import require_admin, require_scope


def requires_scope(scope: str) -> Guard:
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        require_scope(connection.user, scope)

    return guard


async def requires_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    require_admin(connection.user)
