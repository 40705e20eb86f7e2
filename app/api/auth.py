"""Authentication middleware: turns credentials into the domain's `AuthorizationContext`.

Each credential kind is one authenticator; the first whose header is present decides. The database
lookup is one self-contained call in the worker pool that opens and closes its own session, so no
connection is ever held across a hop between the event loop and a thread (see docs/architecture.md).
"""

from litestar.concurrency import sync_to_thread
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.domains.base.authorization import AuthorizationContext
from app.domains.base.exceptions import AuthenticationError
from app.domains.users.service import APIKeyService
from app.infrastructure.database import Database
from app.infrastructure.security import APIKeyHasher

API_KEY_HEADER = "X-API-Key"


def authenticate_api_key(database: Database, hasher: APIKeyHasher, key: str) -> AuthorizationContext:
    with database.session() as session:
        return APIKeyService(session, hasher=hasher).authenticate(key)


class AuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        state = connection.app.state
        if key := connection.headers.get(API_KEY_HEADER):
            context = await sync_to_thread(authenticate_api_key, state.database, state.api_key_hasher, key)
            return AuthenticationResult(user=context, auth=context)
        raise AuthenticationError(f"authentication required: send an {API_KEY_HEADER} header")
