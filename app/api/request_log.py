"""Request ids and the access log, kept by the outermost ASGI layer around the app.

Litestar's own middleware runs only on routes that matched; this layer also sees the router's 404s
and 405s and every problem response. Per request it: gives the request its id (the client's or
proxy's `X-Request-ID` when it is a plain token of at most 128 characters, else a new one), sets
that header and the response headers below, makes it the id of every record logged while the request
is served (`log_context`: the thread pool's hops included), and once the response is sent logs one `app.access`
record with the method, the path (never the query string, which may carry secrets), the status, the
latency and the id of the user the request authenticated as. No header, cookie or body is ever logged.

Headers on every response, one of three precomputed tuples (a request pays a list concatenation):
- `X-Content-Type-Options: nosniff`: a browser never reads a JSON body as HTML or script.
- `Cache-Control: no-store`, unless a handler sends its own and says so (`cacheable`: only the docs'
  vendored assets, public and the same for everyone). Every other response depends on a credential,
  carries one (the new API key), or is a probe or an error that a cache must not replay; `private`
  would still let a browser keep a user's data, or a key shown once, on disk. A handler that sets
  Cache-Control without `cacheable` gets `no-store` beside it, which caches obey: it fails closed.
- `Vary: Authorization, X-API-Key, Cookie` where the authentication middleware read a credential
  (`varies_by_credential`), its 401 included: a cache that ignores `no-store` still keys on them.
"""

import logging
import re
import time
from collections.abc import Callable
from random import getrandbits
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from app.infrastructure.log_context import reset_fields, set_request_id
from app.infrastructure.log_format import ACCESS_LOGGER

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_HEADER_NAME = REQUEST_ID_HEADER.lower().encode()
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
# Keys of the scope's state (`request.state`): the request id, and the unit of work whose actor the
# access line names (put there by `provide_unit_of_work`).
REQUEST_ID = "request_id"
REQUEST_UNIT_OF_WORK = "request_unit_of_work"
RESPONSE_HEADERS = "response_headers"  # which of the tuples below the response gets (default: _NO_STORE)

_NOSNIFF = ((b"x-content-type-options", b"nosniff"),)
_NO_STORE = (*_NOSNIFF, (b"cache-control", b"no-store"))
_NO_STORE_VARY = (*_NO_STORE, (b"vary", b"Authorization, X-API-Key, Cookie"))

logger = logging.getLogger(ACCESS_LOGGER)


def request_id(scope: Scope) -> str:
    """The request's id: the client's `X-Request-ID` when it is a plain token, else a new one."""
    state: dict[str, Any] = scope.setdefault("state", {})
    rid = state.get(REQUEST_ID)
    if rid is None:
        given = next((value for name, value in scope["headers"] if name == _REQUEST_ID_HEADER_NAME), b"")
        rid = state[REQUEST_ID] = given.decode() if _SANE_REQUEST_ID.fullmatch(given) else _new_request_id()
    return rid


def _new_request_id() -> str:
    """32 random hex digits. Not from `uuid4`: its `os.urandom` releases the GIL on the event loop,
    and the worker threads then take it (about +100 µs of CPU per request under load, measured)."""
    return f"{getrandbits(128):032x}"


# Told of each request once it is answered: the request's scope, its status, its seconds (metrics).
type RequestObserver = Callable[[HTTPScope, int, float], None]


class AccessLog:
    """Wraps the app's ASGI handler (`app.asgi_handler`): one id, one header, one log record, and
    the observer's call (the request metrics) when there is one."""

    def __init__(self, app: ASGIApp, observe: RequestObserver | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        header = (_REQUEST_ID_HEADER_NAME, rid.encode())
        context = set_request_id(rid)
        state = scope["state"]
        status = 500  # what the server answers if the app fails before it does

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = state.get(RESPONSE_HEADERS, _NO_STORE)
                message["headers"] = [*message.get("headers", ()), header, *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            if logger.isEnabledFor(logging.INFO):
                _log(scope, status, seconds * 1000)
            if self.observe is not None:
                self.observe(scope, status, seconds)
            reset_fields(context)


def varies_by_credential(scope: Scope) -> None:
    """The response depends on the request's credential headers (the authentication middleware)."""
    scope["state"][RESPONSE_HEADERS] = _NO_STORE_VARY


def cacheable(scope: Scope) -> None:
    """The handler sends its own `Cache-Control`: no `no-store` beside it."""
    scope["state"][RESPONSE_HEADERS] = _NOSNIFF


def _log(scope: HTTPScope, status: int, latency_ms: float) -> None:
    state = scope["state"]
    unit_of_work = state.get(REQUEST_UNIT_OF_WORK)
    method, path = scope["method"], scope["path"]
    fields = {  # the request id comes from the context (`set_request_id`)
        "method": method,
        "path": path,
        "status": status,
        "latency_ms": round(latency_ms, 2),
        "user_id": unit_of_work.user_id if unit_of_work is not None else None,
    }
    logger.info("%s %s %d %.1f ms", method, path, status, latency_ms, extra=fields)
