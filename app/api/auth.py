"""Authentication, split across the one hop a request makes.

On the event loop: `CredentialMiddleware` reads the credential a request carries — first present
wins: `X-API-Key`, then `Authorization: Bearer <Clerk session token>`, then the `__session` /
`__session_<suffix>` cookies — and refuses requests without a well-formed one (401). Its only I/O:
a session token whose key is not cached waits there, as a coroutine and for a bounded time, for the
shared JWKS fetch (see `app.infrastructure.jwks`), so no worker thread ever waits on Clerk.

In the worker thread, inside the request's unit of work: `RequestUnitOfWork.authenticate`
(`app.api.request_unit_of_work`) verifies it (the key row, or the token's signature and then its
user, created on first sight) with the same session the handler then uses. So the actor's row is
already loaded, nothing is committed twice, and no connection is ever held across a hop between the
event loop and the pool.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import ServiceUnavailableException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.api.request_log import varies_by_credential
from app.domains.base.exceptions import AuthenticationError, PermissionDeniedError
from app.domains.users.api_keys import api_key_prefix
from app.domains.users.exceptions import InvalidAPIKeyError
from app.infrastructure.clerk_session_tokens import TokenRejected

API_KEY_HEADER = "X-API-Key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SESSION_COOKIE = "__session"


class CredentialKind(StrEnum):
    API_KEY = "api_key"
    SESSION_TOKEN = "session_token"  # noqa: S105 (a kind, not a secret)


@dataclass(frozen=True, slots=True)
class Credential:
    kind: CredentialKind
    values: tuple[str, ...]  # one key or header token; one or more cookies
    from_cookie: bool = False


def read_credential(connection: ASGIConnection[Any, Any, Any, Any]) -> Credential:
    if key := connection.headers.get(API_KEY_HEADER):
        if api_key_prefix(key) is None:
            raise InvalidAPIKeyError("malformed API key")
        return Credential(CredentialKind.API_KEY, (key,))
    authorization = connection.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization header must be 'Bearer <session token>'", reason="malformed")
        return Credential(CredentialKind.SESSION_TOKEN, (token.strip(),))
    cookies = connection.cookies
    names = sorted(name for name in cookies if name == SESSION_COOKIE or name.startswith(f"{SESSION_COOKIE}_"))
    if tokens := tuple(cookies[name] for name in names if cookies[name]):
        return Credential(CredentialKind.SESSION_TOKEN, tokens, from_cookie=True)
    raise AuthenticationError(
        f"authentication required: send an {API_KEY_HEADER} header or a Clerk session token", reason="missing"
    )


class CredentialMiddleware(AbstractAuthenticationMiddleware):
    """Puts the request's `Credential` in `request.auth`; the actor is found in the handler's thread."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        varies_by_credential(connection.scope)  # whatever the outcome, a 401 too
        credential = read_credential(connection)
        if credential.kind is CredentialKind.SESSION_TOKEN:
            verifier = connection.app.state.container.clerk_verifier
            if verifier is None:
                raise AuthenticationError("session tokens are not accepted: Clerk is not configured", reason="disabled")
            if credential.from_cookie:
                refuse_cross_site(connection, verifier.authorized_parties)
            if verifier.fetches_keys:
                try:
                    await verifier.resolve_keys(credential.values)
                except TokenRejected as error:
                    raise token_refused(error) from None
        return AuthenticationResult(user=None, auth=credential)


def token_refused(rejection: TokenRejected) -> Exception:
    """401 with the failed check; 503 with Retry-After when the key could not be had: the token may
    be valid, and a 401 would make Clerk's frontend sign the user out or loop."""
    if rejection.reason == "key_unavailable":
        retry_after = str(rejection.retry_after or 1)
        return ServiceUnavailableException(
            detail=f"session token not verified: {rejection.detail}",
            headers={"Retry-After": retry_after},
            extra={"reason": rejection.reason},
        )
    return AuthenticationError(f"session token rejected: {rejection.detail}", reason=rejection.reason)


def refuse_cross_site(connection: ASGIConnection[Any, Any, Any, Any], authorized_parties: frozenset[str]) -> None:
    """CSRF: the browser attaches the session cookie to any site's request, so an unsafe request
    authenticated by it must come from an authorized origin, with a JSON body (a cross-site form
    can send neither an Origin we allow nor `application/json`). Header credentials are unchanged:
    a browser never adds them on its own."""
    method = connection.scope.get("method", "GET")
    if method in SAFE_METHODS:
        return
    origin = connection.headers.get("origin")
    if origin is None or origin not in authorized_parties:
        raise PermissionDeniedError("a cookie-authenticated change must come from an authorized origin", reason="csrf")
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if method in BODY_METHODS and media_type != "application/json":
        raise PermissionDeniedError("a cookie-authenticated change must send application/json", reason="csrf")
