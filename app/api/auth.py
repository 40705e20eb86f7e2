"""Authentication middleware: turns credentials into the domain's `AuthorizationContext`.

Credentials, first present wins: `X-API-Key`, then `Authorization: Bearer <Clerk session token>`,
then the `__session` / `__session_<suffix>` cookie. Either way the database lookup is one
self-contained call in the worker pool that opens and closes its own session, so no connection is
ever held across a hop between the event loop and a thread (see docs/architecture.md).
"""

from litestar.concurrency import sync_to_thread
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.domains.base.authorization import AuthorizationContext
from app.domains.base.exceptions import AuthenticationError
from app.domains.users.clerk import ClerkSync
from app.domains.users.service import APIKeyService
from app.infrastructure.clerk import ClerkTokenVerifier, TokenRejected
from app.infrastructure.database import Database
from app.infrastructure.security import APIKeyHasher

API_KEY_HEADER = "X-API-Key"
SESSION_COOKIE = "__session"


def authenticate_api_key(database: Database, hasher: APIKeyHasher, key: str) -> AuthorizationContext:
    with database.session() as session:
        return APIKeyService(session, hasher=hasher).authenticate(key)


def authenticate_session_token(
    database: Database, verifier: ClerkTokenVerifier, tokens: list[str], from_cookie: bool
) -> AuthorizationContext:
    """Verify the token (the JWKS may be fetched here, off the event loop), then find its user."""
    rejection: TokenRejected | None = None
    for token in tokens:  # several cookies: the first that verifies
        try:
            claims = verifier.verify(token, from_cookie=from_cookie)
            break
        except TokenRejected as error:
            rejection = rejection or error
    else:
        assert rejection is not None  # noqa: S101 (tokens is never empty)
        raise AuthenticationError(f"session token rejected: {rejection.detail}", reason=rejection.reason)
    with database.session() as session:
        return ClerkSync(session, auto_commit=True).authenticate(claims.user_id)


def session_tokens(connection: ASGIConnection) -> tuple[list[str], bool]:
    """The session tokens a request carries, and whether they came from cookies."""
    authorization = connection.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization header must be 'Bearer <session token>'", reason="malformed")
        return [token.strip()], False
    cookies = connection.cookies
    names = sorted(name for name in cookies if name == SESSION_COOKIE or name.startswith(f"{SESSION_COOKIE}_"))
    return [cookies[name] for name in names if cookies[name]], True


class AuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        state = connection.app.state
        if key := connection.headers.get(API_KEY_HEADER):
            context = await sync_to_thread(authenticate_api_key, state.database, state.api_key_hasher, key)
            return AuthenticationResult(user=context, auth=context)
        tokens, from_cookie = session_tokens(connection)
        if tokens:
            if state.clerk_verifier is None:
                raise AuthenticationError("session tokens are not accepted: Clerk is not configured", reason="disabled")
            context = await sync_to_thread(
                authenticate_session_token, state.database, state.clerk_verifier, tokens, from_cookie
            )
            return AuthenticationResult(user=context, auth=context)
        raise AuthenticationError(
            f"authentication required: send an {API_KEY_HEADER} header or a Clerk session token", reason="missing"
        )
