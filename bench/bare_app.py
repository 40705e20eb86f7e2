"""The baseline of `task bench`: the least a sync Litestar app can do for the app's answers.

`uvicorn bench.bare_app:app`, configured like the app (DATABASE_URL, WORKER_THREADS,
DATABASE_POOL_SIZE, CLERK_ISSUER, CLERK_JWT_KEY). Each request is one bare `sync_to_thread=True`
handler: verify the RS256 session token with PyJWT, or find the API key's row by its prefix, then one
indexed SELECT through a plain SQLAlchemy Engine connection (psycopg2, pool sized like the app's, no
pre-ping). No middleware, no dependency injection, no ORM session, no schema validation, and no
argon2 (the app remembers the keys it verified, so after its warm-up it does not pay it either).

    GET /api/users/me        the caller's user (Authorization: Bearer <token>, or X-API-Key)
    GET /api/users?limit=50  the newest users and a total counted up to 10 001 rows, like the app
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from litestar import Litestar, Request, get
from litestar.exceptions import NotAuthorizedException
from sqlalchemy import Connection, create_engine, func, literal, or_, select

from app.domains.users.models import APIKey, User
from app.infrastructure.config import get_settings

COUNT_CAP = 10_000
settings = get_settings()
engine = create_engine(settings.database_url, pool_size=settings.pool_size, max_overflow=0)
public_key = load_pem_public_key(settings.clerk_jwt_key.encode()) if settings.clerk_jwt_key else None

users = User.__table__  # type: ignore[attr-defined]
api_keys = APIKey.__table__  # type: ignore[attr-defined]
PUBLIC_COLUMNS = [
    users.c[name]
    for name in (
        "id",
        "email",
        "clerk_id",
        "role",
        "is_active",
        "first_name",
        "last_name",
        "image_url",
        "created_at",
        "updated_at",
    )
]
USABLE = (users.c.deleted_at.is_(None), users.c.is_active.is_(True))


def user_by_key(connection: Connection, key: str) -> dict[str, Any] | None:
    """The key's row found by its prefix (`sk_<16 hex>`), joined to its user: one indexed SELECT."""
    prefix = "_".join(key.split("_", 2)[:2])  # the secret after it may hold "_" too
    statement = (
        select(*PUBLIC_COLUMNS)
        .join(api_keys, api_keys.c.user_id == users.c.id)
        .where(
            api_keys.c.prefix == prefix,
            api_keys.c.revoked_at.is_(None),
            or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > func.now()),
            *USABLE,
        )
    )
    row = connection.execute(statement).mappings().one_or_none()
    return dict(row) if row is not None else None


def user_by_token(connection: Connection, token: str) -> dict[str, Any] | None:
    """Verify the token (signature, expiry, issuer), then the user by its indexed Clerk id."""
    try:
        claims = jwt.decode(
            token, public_key, algorithms=["RS256"], issuer=settings.clerk_issuer, options={"verify_aud": False}
        )
    except jwt.InvalidTokenError:
        return None
    row = connection.execute(select(*PUBLIC_COLUMNS).where(users.c.clerk_id == claims["sub"], *USABLE))
    found = row.mappings().one_or_none()
    return dict(found) if found is not None else None


def caller(request: Request, connection: Connection) -> dict[str, Any]:
    if key := request.headers.get("x-api-key"):
        user = user_by_key(connection, key)
    else:
        user = user_by_token(connection, request.headers.get("authorization", "").removeprefix("Bearer "))
    if user is None:
        raise NotAuthorizedException()
    return user


@get("/api/users/me", sync_to_thread=True)
def me(request: Request) -> dict[str, Any]:
    with engine.connect() as connection:
        return caller(request, connection)


@get("/api/users", sync_to_thread=True)
def list_users(request: Request, limit: int = 20) -> dict[str, Any]:
    """Admins only (not checked: the bench calls it as an admin). One page and a capped count."""
    with engine.connect() as connection:
        caller(request, connection)
        alive = users.c.deleted_at.is_(None)
        page = select(*PUBLIC_COLUMNS).where(alive).order_by(users.c.created_at.desc(), users.c.id.desc()).limit(limit)
        items = [dict(row) for row in connection.execute(page).mappings()]
        capped = select(literal(1)).select_from(users).where(alive).limit(COUNT_CAP + 1).subquery()
        total = connection.execute(select(func.count()).select_from(capped)).scalar_one()
    return {
        "items": items,
        "limit": limit,
        "offset": 0,
        "total": min(total, COUNT_CAP),
        "total_is_exact": total <= COUNT_CAP,
    }


async def size_worker_pool() -> None:
    """Like the app: sync handlers run in the loop's default executor, one thread per connection."""
    executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="worker")
    asyncio.get_running_loop().set_default_executor(executor)


app = Litestar([me, list_users], on_startup=[size_worker_pool], on_shutdown=[engine.dispose])
