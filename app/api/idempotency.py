"""The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header) on the creating
POSTs, declared per route: `@post(..., idempotent=True)` (`app/api/route_decorators.py`).

- Optional: a request without it runs as any other (nothing here is on its path).
- The value is a Structured Field String (`"8e03978e-40d5-43e8-bc93-6894a57f9324"`); the bare form
  (`8e03978e-...`, as most clients send it) is accepted too. 1-255 printable ASCII characters; one
  header only. Anything else: 400, `reason: idempotency_key_invalid`.
- Keys are per user (an API key acts as its user), and live IDEMPOTENCY_KEY_TTL_HOURS.
- The same key and the same request (method, path, JSON body, tenant) replay the stored response:
  same status, body and `Location`, plus `Idempotent-Replayed: true`. The same key with another
  request: 422, `reason: idempotency_key_reused`. A duplicate sent while the first still runs waits
  for it (then replays it, or runs if the first failed); after 2 s, 409
  `idempotency_key_in_flight` with `Retry-After`.
- Only successes are stored, in the transaction that made them: an error (4xx, 5xx, a timeout)
  rolls the claim back with everything else, so the retry runs again.

The header is read on the event loop by `provide_unit_of_work` (only on routes declared idempotent;
no I/O: the body is already in memory); the claim, the operation and the stored response share the
request's one worker-thread call and transaction. A request without the header pays one dict
lookup and one header lookup.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.enums import MediaType, ParamType
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema
from litestar.serialization import encode_json

from app.domains.base.exceptions import MalformedInputError
from app.domains.base.unit_of_work import UnitOfWork
from app.domains.idempotency.fingerprints import request_digest
from app.domains.idempotency.service import IdempotencyService, StoredResponse

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# A Structured Field String of 1-255 characters (printable ASCII, `"` and `\` escaped), or the bare
# form: 1-255 visible ASCII characters, the first not a quote.
KEY_PATTERN = r'^(?:"(?:[ !#-\[\]-~]|\\["\\]){1,255}"|[!#-~][!-~]{0,254})$'
_SF_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')
_BARE = re.compile(r"[!#-~][!-~]*")

DESCRIPTION = (
    "Makes a retry safe (draft-ietf-httpapi-idempotency-key-header): a unique value per operation, "
    'e.g. a UUID, as a structured-field string ("...") or bare; 1-255 printable ASCII characters. '
    "Within IDEMPOTENCY_KEY_TTL_HOURS (default 24 h), the same key with the same request replays the "
    "first response (header `Idempotent-Replayed: true`); with another request it is a 422 "
    "(`idempotency_key_reused`); while the first is still running, the retry waits for it, then 409 "
    "(`idempotency_key_in_flight`, `Retry-After`). Keys are per user. Only successes are kept: after "
    "an error the same key runs the request again."
)
NOTE = (
    "Accepts an `Idempotency-Key` header: a retry with the same key and body gets the first response "
    "back (with `Idempotent-Replayed: true`) instead of creating again."
)
SCHEMA = Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_KEY_LENGTH + 2, pattern=KEY_PATTERN)  # quotes too
# The `opt` key of a route declared `idempotent=True` (read by `provide_unit_of_work`).
IDEMPOTENT = "idempotent"
REPLAYED_RESPONSE_HEADER = ResponseHeader(
    name=REPLAYED,
    description="`true` when this is the stored response of an earlier request with the same Idempotency-Key",
    value="true",  # documented only: set on replays
    documentation_only=True,
)


def _invalid(message: str) -> MalformedInputError:
    return MalformedInputError(
        f"invalid {HEADER} header: {message}",
        reason="idempotency_key_invalid",
        errors=[{"key": HEADER, "message": message, "source": "header"}],
    )


def parse_key(values: list[str]) -> str:
    """The key in the header's value(s): an sf-string (unescaped) or a bare value."""
    if len(values) != 1:
        raise _invalid("send the header once")
    value = values[0].strip(" \t")
    if value.startswith('"'):
        match = _SF_STRING.fullmatch(value)
        if match is None:
            raise _invalid('a string is quoted, in printable ASCII, with only \\" and \\\\ escaped')
        key = re.sub(r"\\(.)", r"\1", match.group(1))
    elif _BARE.fullmatch(value):
        key = value
    else:
        raise _invalid("use printable ASCII characters (a UUID, say)")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise _invalid(f"the key has 1 to {MAX_KEY_LENGTH} characters")
    return key


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A request that came with a key: what the worker thread needs to claim, store and replay."""

    key: str
    digest: str  # of the method, path and body (`request_digest`)
    status_code: int  # the route's, for a handler that returns plain data
    serializer: Callable[[Any], Any]  # the route's, so a stored body is the bytes Litestar would send

    def respond(self, uow: UnitOfWork, operation: Callable[[], Any]) -> Response[bytes]:
        """Inside the request's unit of work: replay, or run the operation and store its response."""
        idempotency = uow.service(IdempotencyService)
        outcome = idempotency.claim(self.key, self.digest)
        if isinstance(outcome, StoredResponse):
            return as_response(outcome, replayed=True)
        stored = self._stored(operation())
        idempotency.store(outcome, self.key, stored)
        return as_response(stored, replayed=False)

    def _stored(self, result: Any) -> StoredResponse:
        status, headers, content, media_type = self.status_code, {}, result, MediaType.JSON.value
        if isinstance(result, Response):
            status, content = result.status_code or status, result.content
            headers = {name: str(value) for name, value in result.headers.items()}
            media_type = str(getattr(result.media_type, "value", result.media_type) or media_type)
        body = b"" if content is None else encode_json(content, self.serializer)
        return StoredResponse(status, {**headers, "Content-Type": media_type}, body)


def as_response(stored: StoredResponse, *, replayed: bool) -> Response[bytes]:
    headers = dict(stored.headers)
    media_type = headers.pop("Content-Type", MediaType.JSON.value)
    if replayed:
        headers[REPLAYED] = "true"
    return Response(stored.body, status_code=stored.status, headers=headers, media_type=media_type)


async def read_idempotent_request(request: Request[Any, Any, Any]) -> IdempotentRequest | None:
    """On the event loop, for a route declared idempotent: the request's key (checked) and digest,
    or None without the header. No I/O: the body is in memory (or an empty export body is read)."""
    values = request.headers.getall(HEADER, [])
    if not values:
        return None
    key = parse_key(values)
    body = await request.body()
    handler = request.route_handler
    digest = request_digest(request.method, request.url.path, body)
    return IdempotentRequest(key, digest, handler.status_code, handler.default_serializer)


@dataclass
class IdempotentOperation(Operation):
    """The OpenAPI operation of an idempotent route: it states the optional header. (A Litestar
    header parameter would state it too, but would cost every request on the route a dependency's
    resolution, ~20-40 µs, whether it sends the header or not.)"""

    def __post_init__(self) -> None:
        header = Parameter(
            name=HEADER, param_in=ParamType.HEADER, required=False, description=DESCRIPTION, schema=SCHEMA
        )
        self.parameters = [*(self.parameters or []), header]
