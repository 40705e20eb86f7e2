"""Inbound webhooks. Clerk: point a Clerk dashboard webhook endpoint at POST /webhooks/clerk."""

import msgspec
from litestar import Controller, post
from litestar.datastructures import Headers, State
from litestar.di import NamedDependency, Provide
from litestar.params import RawBody

from app.api.dependencies import provide_clerk_sync
from app.domains.base.exceptions import MalformedInputError
from app.domains.users.clerk import ClerkSync
from app.infrastructure.svix import WebhookRejected


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]  # noqa: RUF012
    opt = {"exclude_from_auth": True}  # noqa: RUF012 (the signature authenticates the sender)
    security = [{}]  # noqa: RUF012
    dependencies = {"clerk_sync": Provide(provide_clerk_sync)}  # noqa: RUF012

    @post("/clerk", operation_id="receiveClerkWebhook", status_code=200, sync_to_thread=True)
    def receive_clerk_event(
        self, state: State, headers: Headers, body: RawBody, clerk_sync: NamedDependency[ClerkSync]
    ) -> dict[str, str | None]:
        """Verify the Svix signature over the raw body, record the event once, apply it.

        2xx for every verified event, applied or not (a redelivery, an event we cannot apply): Svix
        retries anything else. 4xx for unsigned or malformed requests.
        """
        if state.svix_verifier is None:
            raise WebhookRejected("disabled", "CLERK_WEBHOOK_SIGNING_SECRET is not configured")
        svix_id = state.svix_verifier.verify(headers, body)
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            raise MalformedInputError("the body is not JSON") from error
        result = clerk_sync.handle_delivery(svix_id, payload)
        return {"status": result.outcome or "duplicate", "detail": result.detail}
