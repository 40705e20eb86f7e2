"""The baseline of `task bench`: the least a sync Litestar app can do for the app's answers.

`uvicorn bench.bare_app:app`, configured like the app (DATABASE_URL, WORKER_THREADS,
DATABASE_POOL_SIZE, CLERK_ISSUER, CLERK_JWT_KEY). Each request is one bare `sync_to_thread=True`
handler. With a session token it is the limit the issue measures the app against: verify the RS256
token with PyJWT (every time), then one SELECT of the user by its Clerk id through a SQLAlchemy ORM
session, answered as a dict. With an API key: find the key's row by its prefix (joined to its user,
and for the projects to its membership), and indexed SELECTs for the rest (a list: its page and a
capped count) through a plain SQLAlchemy Engine connection. psycopg2, pool sized like the app's, no
pre-ping. No middleware, no dependency injection, no schema validation, no access log, and no argon2
(the app remembers the keys it verified, so after its warm-up it does not pay it either).

    GET /api/users/me           the caller's user (Authorization: Bearer <token>, or X-API-Key)
    GET /api/users?limit=50     the newest users and a total counted up to 10 001 rows, like the app
    GET /api/projects?limit=50  the newest projects of the organization an API key is bound to (its
                                user a live member of it, the organization live: one SELECT), and a
                                total counted up to 10 001 rows, not counted on a short first page,
                                like the app
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from litestar import Litestar, Request, get
from litestar.exceptions import NotAuthorizedException
from sqlalchemy import ColumnElement, Connection, and_, create_engine, func, literal, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.domains.organizations.models import Membership, Organization
from app.domains.projects.models import Project
from app.domains.users.models import APIKey, User
from app.infrastructure.config import get_settings

COUNT_CAP = 10_000
settings = get_settings()
engine = create_engine(settings.database_url, pool_size=settings.pool_size, max_overflow=0)
sessions = sessionmaker(engine, expire_on_commit=False)
public_key = load_pem_public_key(settings.clerk_jwt_key.encode()) if settings.clerk_jwt_key else None

users = User.__table__  # type: ignore[attr-defined]
api_keys = APIKey.__table__  # type: ignore[attr-defined]
memberships = Membership.__table__
organizations = Organization.__table__
projects = Project.__table__
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
PROJECT_COLUMNS = [
    projects.c[name]
    for name in ("id", "name", "description", "status", "organization_id", "created_by", "created_at", "updated_at")
]
PUBLIC_FIELDS = [column.name for column in PUBLIC_COLUMNS]
USABLE = (users.c.deleted_at.is_(None), users.c.is_active.is_(True))


def usable_key(key: str) -> list[ColumnElement[bool]]:
    """The key's row by its prefix (`sk_<16 hex>`), not revoked nor expired, its user usable."""
    prefix = "_".join(key.split("_", 2)[:2])  # the secret after it may hold "_" too
    return [
        api_keys.c.prefix == prefix,
        api_keys.c.revoked_at.is_(None),
        or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > func.now()),
        *USABLE,
    ]


def user_by_key(connection: Connection, key: str) -> dict[str, Any] | None:
    """The key's row found by its prefix, joined to its user: one indexed SELECT."""
    statement = select(*PUBLIC_COLUMNS).join(api_keys, api_keys.c.user_id == users.c.id).where(*usable_key(key))
    row = connection.execute(statement).mappings().one_or_none()
    return dict(row) if row is not None else None


def user_by_token(session: Session, token: str) -> dict[str, Any] | None:
    """Verify the token (signature, expiry, issuer), then the user by its indexed Clerk id: one
    SELECT through the ORM session."""
    try:
        claims = jwt.decode(
            token, public_key, algorithms=["RS256"], issuer=settings.clerk_issuer, options={"verify_aud": False}
        )
    except jwt.InvalidTokenError:
        return None
    user = session.scalars(select(User).where(User.clerk_id == claims["sub"], *USABLE)).one_or_none()
    return {field: getattr(user, field) for field in PUBLIC_FIELDS} if user is not None else None


def caller(request: Request, connection: Connection) -> dict[str, Any]:
    """The API key's user (the lists' callers)."""
    user = user_by_key(connection, request.headers.get("x-api-key", ""))
    if user is None:
        raise NotAuthorizedException()
    return user


@get("/api/users/me", sync_to_thread=True)
def me(request: Request) -> dict[str, Any]:
    if "x-api-key" in request.headers:
        with engine.connect() as connection:
            return caller(request, connection)
    with sessions() as session:
        user = user_by_token(session, request.headers.get("authorization", "").removeprefix("Bearer "))
    if user is None:
        raise NotAuthorizedException()
    return user


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


def organization_by_key(connection: Connection, key: str) -> Any:
    """The organization the key is bound to, when its user is still a member of it and it is not
    deleted (the app refuses the key otherwise): one SELECT joining key, user, membership and
    organization."""
    statement = (
        select(api_keys.c.organization_id)
        .join(users, api_keys.c.user_id == users.c.id)
        .join(
            memberships,
            and_(
                memberships.c.organization_id == api_keys.c.organization_id,
                memberships.c.user_id == api_keys.c.user_id,
                memberships.c.deleted_at.is_(None),
            ),
        )
        .join(
            organizations, and_(organizations.c.id == api_keys.c.organization_id, organizations.c.deleted_at.is_(None))
        )
        .where(*usable_key(key))
    )
    return connection.execute(statement).scalar_one_or_none()


@get("/api/projects", sync_to_thread=True)
def list_projects(request: Request, limit: int = 20) -> dict[str, Any]:
    """A member's key bound to an organization (what the bench sends; session tokens, personal keys
    and app admins are not handled): one page of that organization's projects and a capped count."""
    with engine.connect() as connection:
        organization_id = organization_by_key(connection, request.headers.get("x-api-key", ""))
        if organization_id is None:
            raise NotAuthorizedException()
        mine = projects.c.organization_id == organization_id
        page = (
            select(*PROJECT_COLUMNS)
            .where(mine)
            .order_by(projects.c.created_at.desc(), projects.c.id.desc())
            .limit(limit)
        )
        items = [dict(row) for row in connection.execute(page).mappings()]
        if len(items) < limit:  # the last page: the total is known without counting
            total = len(items)
        else:
            capped = select(literal(1)).select_from(projects).where(mine).limit(COUNT_CAP + 1).subquery()
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


app = Litestar([me, list_users, list_projects], on_startup=[size_worker_pool], on_shutdown=[engine.dispose])
