"""Inbound webhooks. Clerk: point a Clerk dashboard webhook endpoint at POST /webhooks/clerk."""

import msgspec
from litestar import Controller
from litestar.datastructures import Headers
from litestar.params import RawBody

from app.api.dependencies import UnitOfWorkDep
from app.api.route_decorators import post
from app.domains.base.actors import Actor
from app.domains.base.exceptions import MalformedInputError
from app.domains.webhooks.clerk_deliveries import ClerkDeliveries
from app.infrastructure import metrics
from app.infrastructure.svix import MAX_TIMESTAMP_DIGITS, WebhookRejected

# Clerk's user events are 1-2 KB, and its three metadata fields are capped at 8 KB each: 64 KiB is
# over twice the largest event we can construct, and 512 unsigned bodies in flight hold ~35 MB.
CLERK_WEBHOOK_MAX_BODY_BYTES = 64 * 1024


def _header(name: str, description: str, **schema: object) -> dict[str, object]:
    return {"name": name, "in": "header", "required": True, "description": description, "schema": schema}


# What the handler reads raw, for the OpenAPI document: Svix's headers and a JSON event.
SIGNED_DELIVERY = {
    "parameters": [
        _header("svix-id", "The delivery's id (a redelivery repeats it)", type="string", minLength=1),
        _header(
            "svix-timestamp",
            "Unix seconds; refused when more than 5 minutes from now",
            type="string",
            pattern=f"^[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}$",
        ),
        _header("svix-signature", "Space-separated `v1,<base64>` signatures", type="string", minLength=1),
    ],
    "requestBody": {
        "required": True,
        "description": "A Clerk event (`type`, `data`), signed as sent",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]  # noqa: RUF012

    @post(
        "/clerk",
        operation_id="receiveClerkWebhook",
        status_code=200,
        public=True,
        errors=(401,),
        request_max_body_size=CLERK_WEBHOOK_MAX_BODY_BYTES,
        document=SIGNED_DELIVERY,
    )
    def receive_clerk_event(self, uow: UnitOfWorkDep, headers: Headers, body: RawBody) -> dict[str, str | None]:
        """Verify the Svix signature over the raw body, record the event once, apply it.

        The signature authenticates the sender (the route is public). 2xx for every verified event,
        applied or not (a redelivery, an event we cannot apply): Svix retries anything else. 4xx for
        unsigned or malformed requests.
        """
        verifier = uow.container.svix_verifier
        if verifier is None:
            raise WebhookRejected("disabled", "CLERK_WEBHOOK_SIGNING_SECRET is not configured")
        svix_id = verifier.verify(headers, body)
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            raise MalformedInputError("the body is not JSON") from error
        result = uow.service(ClerkDeliveries, actor=Actor.system()).handle(svix_id, payload)  # verified
        outcome = result.outcome or "duplicate"
        metrics.recorder.webhook_delivery(outcome)
        return {"status": outcome, "detail": result.detail}
