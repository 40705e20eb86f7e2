"""The request's unit of work, and its provider.

`provide_unit_of_work` (async: it does no I/O) builds it on the event loop from the request's
credential; the route decorators (`app.api.route_decorators`) then run the handler inside it, in one
worker-thread call, where `authenticate` verifies the credential with the session the handler uses.
"""

from typing import Any
from uuid import UUID

from litestar import Request

from app.api.auth import SAFE_METHODS, Credential, CredentialKind, token_refused
from app.api.idempotency import IDEMPOTENT, IdempotentRequest, read_idempotent_request
from app.api.request_log import REQUEST_UNIT_OF_WORK
from app.bootstrap import Container
from app.domains.base.actors import Actor
from app.domains.base.exceptions import AuthenticationError, NotFoundError
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.organizations.clerk_organization_sync import ClerkOrganizationSync
from app.domains.users.clerk_user_sync import ClerkUserSync
from app.domains.users.service import APIKeyService
from app.infrastructure import tracing
from app.infrastructure.clerk_session_tokens import SessionClaims, TokenRejected


class RequestUnitOfWork(UnitOfWork):
    """A request's unit of work; its actor comes from the request's credential (or is anonymous)."""

    def __init__(
        self, container: Container, credential: Credential | None, *, read_only: bool = False, client: str | None = None
    ) -> None:
        super().__init__(container.session_factory(read_only), None, container.services)
        self.container = container
        self.credential = credential
        self.client = client  # the peer's address: failed authentications are counted per client
        self.idempotency: IdempotentRequest | None = None  # the Idempotency-Key, on routes that take one

    @property
    def user_id(self) -> UUID | None:
        """The user the request acted as: None before authentication, on public routes, for webhooks."""
        return self._actor.user_id if self._actor is not None else None

    def authenticate(self, *, anonymous: bool = False) -> Actor:
        """Run in the worker thread: the actor behind the credential (on a public route: anonymous)."""
        credential = self.credential
        if anonymous:
            actor = Actor.anonymous()
        elif credential is None:  # fail closed, should the middleware ever be bypassed
            raise AuthenticationError("authentication required", reason="missing")
        elif credential.kind is CredentialKind.API_KEY:
            actor = self.service(APIKeyService).authenticate(credential.values[0], client=self.client)
        else:
            claims = self._verified_session(credential)  # a verified token: its claims are Clerk's
            actor = self.service(ClerkUserSync, actor=Actor.system()).authenticate(claims.user_id)
            if (organization := claims.organization) is not None:
                sync = self.service(ClerkOrganizationSync, actor=Actor.system())
                actor = sync.session_organization(actor, organization.clerk_id, organization.slug, organization.role)
        self.actor = actor
        tracing.set_actor(actor.method.value)
        return actor

    def _verified_session(self, credential: Credential) -> SessionClaims:
        """The claims of the first token that verifies (against cached keys: no network).
        Refused: the first token's reason, unless one may be valid but its key was unavailable."""
        verifier = self.container.clerk_verifier
        assert verifier is not None  # noqa: S101 (the middleware refused session tokens without one)
        rejection: TokenRejected | None = None
        for token in credential.values:
            try:
                return verifier.verify(token, from_cookie=credential.from_cookie)
            except TokenRejected as error:
                rejection = error if error.reason == "key_unavailable" else rejection or error
        assert rejection is not None  # noqa: S101 (values is never empty)
        raise token_refused(rejection)


async def provide_unit_of_work(request: Request[Any, Any, Any]) -> RequestUnitOfWork:
    _require_canonical_uuids(request)
    credential = request.scope.get("auth")  # absent on public routes
    credential = credential if isinstance(credential, Credential) else None
    read_only = request.method in SAFE_METHODS  # GET routes read: no transaction (see UnitOfWork)
    client = request.client.host if request.client else None
    uow = RequestUnitOfWork(request.app.state.container, credential, read_only=read_only, client=client)
    request.scope["state"][REQUEST_UNIT_OF_WORK] = uow  # the access log names its actor
    if request.route_handler.opt.get(IDEMPOTENT):  # read here, on the loop: no dependency of its own
        uow.idempotency = await read_idempotent_request(request)
    return uow


def _require_canonical_uuids(request: Request[Any, Any, Any]) -> None:
    """An id in the path is only its canonical hyphenated form: Litestar's `uuid` type also takes
    `{...}`, `urn:uuid:` and unhyphenated spellings, which would make one row reachable at several
    URLs (and confuse caches and logs). Any other spelling is a 404."""
    segments = request.url.path.lower().split("/")
    for value in request.path_params.values():
        if isinstance(value, UUID) and str(value) not in segments:
            raise NotFoundError("not found")
