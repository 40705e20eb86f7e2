"""Every error leaves as RFC 9457 problem details. Domain errors are mapped to HTTP here, once."""

import logging
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pydantic
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap
from sqlalchemy import exc as sa_exc

from app.domains.base.exceptions import (
    AuthenticationError,
    ConflictError,
    DomainError,
    DomainValidationError,
    MalformedInputError,
    NotFoundError,
    PermissionDeniedError,
    TooManyAttemptsError,
)
from app.infrastructure import metrics
from app.infrastructure.database_errors import describe_database_error, involves_database, is_outage, redacted_traceback
from app.infrastructure.log_format import Verbatim
from app.infrastructure.svix import WebhookRejected

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5
# Database failures further apart than this belong to different outages (each logs its traceback).
OUTAGE_GAP_SECONDS = 60.0


@dataclass
class ProblemDetails:
    """RFC 9457. `errors` lists invalid fields (400, 422); `reason` names a failed check (401)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    reason: str | None = None


DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    MalformedInputError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    DomainValidationError: 422,
    TooManyAttemptsError: 429,
}


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def domain_error_status(error: DomainError) -> int | None:
    """The status of the nearest kind of `error` in DOMAIN_ERROR_STATUS (its own class first, then
    its bases in method resolution order); None for a kind no adapter was told about."""
    return next((DOMAIN_ERROR_STATUS[kind] for kind in type(error).__mro__ if kind in DOMAIN_ERROR_STATUS), None)


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    status = domain_error_status(exc)
    if status is None:
        # A DomainError subclass (or DomainError itself) with no status: the API cannot tell whose
        # fault it is, so it is the server's, logged; the domain should raise one of the kinds above.
        logger.error(
            "unmapped domain error %s on %s %s: derive it from a kind in DOMAIN_ERROR_STATUS",
            type(exc).__qualname__,
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return problem(500, "internal server error")
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer, ApiKey realm="X-API-Key"'}
    elif status == 429:
        headers = {"Retry-After": str(exc.extra["retry_after"])}
    if status in {401, 429}:  # one line, never the credential itself
        metrics.recorder.auth_refused(str(exc.extra.get("reason") or _kind(exc)))
        client = request.client.host if request.client else "-"
        logger.info(
            "authentication refused (%d %s) on %s %s from %s",
            status,
            exc.detail,
            request.method,
            request.url.path,
            client,
        )
    return problem(status, exc.detail, headers=headers, **exc.extra)


def _kind(error: Exception) -> str:
    """`InvalidAPIKeyError` -> `invalid_api_key`: a bounded label for an error without a reason."""
    return re.sub(
        r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(error).__name__.removesuffix("Error")
    ).lower()


def _webhook_rejected(_: Request[Any, Any, Any], exc: WebhookRejected) -> Response[dict[str, Any]]:
    status = 503 if exc.reason == "disabled" else 400 if exc.malformed else 401
    metrics.recorder.webhook_delivery(f"rejected_{exc.reason}")
    return problem(status, exc.detail, reason=exc.reason)


def _request_validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    return problem(400, exc.detail, errors=exc.extra or [])


def _pydantic_validation_error(_: Request[Any, Any, Any], exc: pydantic.ValidationError) -> Response[dict[str, Any]]:
    errors = [{"key": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
    return problem(400, "invalid parameters", errors=errors)


# Answered before the body was read to its end: the connection is closed rather than the rest read.
UNREAD_BODY_STATUSES = frozenset({408, 413})


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    headers = exc.headers
    if exc.status_code in UNREAD_BODY_STATUSES:
        headers = {**(headers or {}), "Connection": "close"}
    return problem(exc.status_code, exc.detail, headers=headers, **extra)


class OutageLog:
    """Tells the first failure of an outage (logged with its traceback) from the ones that follow:
    a failure starts a new outage when the previous one is more than OUTAGE_GAP_SECONDS old."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_failure: float | None = None

    def starts_outage(self) -> bool:
        now = time.monotonic()
        with self._lock:
            last, self._last_failure = self._last_failure, now
        return last is None or now - last > OUTAGE_GAP_SECONDS


outages = OutageLog()


def _database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """An unreachable, frozen or failing database, a pool with no free connection: retry later.

    One line per failure (the request id is a field of the record, from the context); the traceback once per outage,
    not per request.
    Neither names the statement's parameters (see `describe_database_error`).
    """
    trace = Verbatim(f"\n{redacted_traceback(exc)}" if outages.starts_outage() else "")
    logger.warning(
        "database unavailable: %s %s: %s%s",
        request.method,
        request.url.path,
        describe_database_error(exc),
        trace,
    )
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
    return problem(503, "the database is unavailable, retry later", headers=headers)


def _database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A statement error: an outage is a 503; anything else is a bug (500)."""
    if is_outage(exc):
        return _database_unavailable(request, exc)
    return _unexpected_error(request, exc)


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """msgspec raises RecursionError on JSON nested deeper than it decodes (10 000 `[`, say)."""
    return problem(400, "the request body is nested too deeply")


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if is_outage(exc):  # a driver error that escaped SQLAlchemy, a wrapped one: still an outage
        return _database_unavailable(request, exc)
    if involves_database(exc):  # the driver's messages quote the statement's values: redacted
        trace = Verbatim(f"\n{redacted_traceback(exc)}")
        logger.error(
            "unhandled error on %s %s: %s%s", request.method, request.url.path, describe_database_error(exc), trace
        )
    else:
        logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal server error")


exception_handlers: ExceptionHandlersMap = {
    DomainError: _domain_error,
    WebhookRejected: _webhook_rejected,
    ValidationException: _request_validation_error,
    pydantic.ValidationError: _pydantic_validation_error,
    HTTPException: _http_error,
    sa_exc.DBAPIError: _database_error,
    sa_exc.TimeoutError: _database_unavailable,
    sa_exc.DisconnectionError: _database_unavailable,
    RecursionError: _too_deep,
    Exception: _unexpected_error,
}
