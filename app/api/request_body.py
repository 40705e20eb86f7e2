"""Request bodies are bounded in size and in time, so an anonymous client cannot hold memory.

Litestar reads a body whole (into memory) before the handler runs, and before a route checks
credentials or a webhook signature. Size: at most `API_MAX_BODY_BYTES` (Litestar's
`request_max_body_size`; a route may set less, the Clerk webhook does); past it, or when
`Content-Length` announces more, 413 before anything more is read. Time: `BodyDeadline` gives the
whole body `REQUEST_BODY_TIMEOUT_SECONDS` from the moment the request's headers are in; a client
trickling its last bytes gets 408 then. Both answers close the connection (the rest of the body
is never read). Behind the compose stack's nginx neither fires for real clients: nginx reads the
whole body before it forwards the request.
"""

import asyncio

from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_408_REQUEST_TIMEOUT
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

# The API's JSON bodies are under a few KB. The bound times the connections uvicorn accepts (512 in
# the image) is what unfinished bodies can hold: 256 KiB -> ~130 MB (1 MiB measured 658 MB RSS).
# A route that takes more (an upload) sets its own `request_max_body_size`.
API_MAX_BODY_BYTES = 256 * 1024


class BodyTimeout(ClientException):
    status_code = HTTP_408_REQUEST_TIMEOUT
    detail = "the request body did not arrive in time"


class BodyIncomplete(ClientException):
    """The client went away mid-body. Nobody reads the answer; the access log then says 400 (a client
    error) where Litestar would say 500, which an attacker could raise at will to set off alerts."""

    detail = "the client closed the connection before sending the whole body"


class BodyDeadline:
    """Wraps the app's ASGI handler: the body's messages must all arrive within `seconds`."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal complete
            if complete:  # after the body (a handler waiting for a disconnect): no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout from None
            if message["type"] == "http.disconnect":
                raise BodyIncomplete
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)
