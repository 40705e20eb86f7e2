"""The reference for `task bench`: the least a sync Litestar handler can do for GET /api/users/me.

One thread hop, one session: read the API key row with its user by prefix, answer a dict. No
middleware, no dependency injection, no argon2 (ours remembers verified keys), no schema.
"""

from litestar import Litestar, Request, get
from sqlalchemy import select

from app.domains.users.models import APIKey, User
from app.infrastructure.config import get_settings
from app.infrastructure.database import Database
from app.infrastructure.security import api_key_prefix

database = Database(get_settings())


@get("/api/users/me", sync_to_thread=True)
def me(request: Request) -> dict[str, str | None]:
    prefix = api_key_prefix(request.headers.get("x-api-key", ""))
    with database.session() as session:
        user = session.scalars(
            select(User).join(APIKey, APIKey.user_id == User.id).where(APIKey.prefix == prefix)
        ).one()
        return {"id": str(user.id), "email": user.email, "role": user.role}


app = Litestar([me], on_shutdown=[database.dispose])
