"""Every error leaves as RFC 9457 problem details. Domain errors are mapped to HTTP here, once."""

import logging
import threading
import time
from http import HTTPStatus
from typing import Annotated, Any, Literal, NotRequired, TypedDict, get_args

import pydantic
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap
from pydantic import ConfigDict, Field, JsonValue, with_config
from sqlalchemy import exc as sa_exc

from app.api.request_log import request_id
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
from app.domains.jobs.models import JobStatus
from app.infrastructure.database_errors import describe_database_error, involves_database, is_outage, redacted_traceback
from app.infrastructure.log_format import Verbatim
from app.infrastructure.svix import WebhookRejected

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5
# Database failures further apart than this belong to different outages (each logs its traceback).
OUTAGE_GAP_SECONDS = 60.0


# Every `reason` the app sends, by where it is raised: a client may switch on them. A test reads the
# code for the reasons it raises, so a new one that is not listed here fails it.
PROBLEM_REASONS: tuple[str, ...] = tuple(
    sorted(
        {
            # credentials (app.api.auth, request_unit_of_work): none, malformed, or not accepted here
            *("missing", "malformed", "disabled", "csrf"),
            # Clerk session tokens (app.infrastructure.clerk_session_tokens.TokenRejected)
            *("algorithm", "token_category", "missing_claim", "authorized_party", "pending_session"),
            *("key_unavailable", "unknown_key", "expired", "not_yet_valid", "issuer", "signature", "token_version"),
            # Svix webhook signatures (app.infrastructure.svix.WebhookRejected)
            *("missing_header", "malformed_header", "timestamp"),
            # the domains' refusals (users, organizations, jobs)
            *("user_inactive", "no_active_organization", "organization_role", "organization_deleted", "not_a_member"),
            # Idempotency-Key (app.api.idempotency): malformed, reused for another request, still running
            *("idempotency_key_invalid", "idempotency_key_reused", "idempotency_key_in_flight"),
            # a job's result asked for too early (409): the job's status
            *(status.value for status in JobStatus if status is not JobStatus.SUCCEEDED),
        }
    )
)
FieldSource = Literal["body", "query", "path", "header", "cookie"]
FIELD_SOURCES: tuple[FieldSource, ...] = get_args(FieldSource)


class FieldError(TypedDict):
    """One invalid field or parameter."""

    key: Annotated[
        str, Field(description="The field (dotted when nested: `scopes.0`) or parameter; empty for the whole body")
    ]
    message: Annotated[str, Field(description="What is wrong with it, for people")]
    source: Annotated[FieldSource, Field(description="Where it was sent")]


_EXAMPLES: list[JsonValue] = [
    {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "Validation failed for PATCH /api/users/me",
        "errors": [{"key": "email", "message": "cannot be null", "source": "body"}],
    },
    {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "missing permission projects:write",
        "required_permission": "projects:write",
    },
    {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "session token has expired",
        "reason": "expired",
    },
]


@with_config(ConfigDict(json_schema_extra={"examples": _EXAMPLES}))
class ProblemDetails(TypedDict):
    """RFC 9457 problem details: the body of every error. Besides the standard members, `errors` lists
    invalid fields (400, 422), `reason` names the check that failed (401, 403, 409, 503),
    `required_permission` the permission a 403 lacked and `retry_after` the seconds a 429 asks to wait
    (also its `Retry-After` header)."""

    type: Annotated[str, Field(json_schema_extra={"format": "uri"}, description="Always `about:blank`")]
    title: Annotated[str, Field(description="The status' phrase")]
    status: Annotated[int, Field(ge=400, le=599, description="The response's status")]
    detail: Annotated[str, Field(description="What happened, for people")]
    errors: NotRequired[list[FieldError]]
    reason: NotRequired[Annotated[str, Field(json_schema_extra={"enum": list(PROBLEM_REASONS)})]]
    required_permission: NotRequired[Annotated[str, Field(description="The permission the credential lacks")]]
    retry_after: NotRequired[Annotated[int, Field(ge=1, description="Seconds to wait before retrying")]]


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
    elif "retry_after" in exc.extra:  # 429, and a 409 for an Idempotency-Key still in use
        headers = {"Retry-After": str(exc.extra["retry_after"])}
    if status in {401, 429}:  # one line, never the credential itself
        client = request.client.host if request.client else "-"
        logger.info(
            "authentication refused (%d %s) on %s %s from %s",
            status,
            exc.detail,
            request.method,
            request.url.path,
            client,
            extra={"request_id": request_id(request.scope)},
        )
    extra = exc.extra
    if isinstance(extra.get("errors"), list):  # a DomainValidationError's fields: each a FieldError
        errors = [item for item in extra["errors"] if isinstance(item, dict)]
        fields = [
            field_error(request, str(item.get("key", "")), str(item.get("message", "")), item.get("source"))
            for item in errors
        ]
        extra = {**extra, "errors": fields}
    return problem(status, exc.detail, headers=headers, **extra)


def _webhook_rejected(_: Request[Any, Any, Any], exc: WebhookRejected) -> Response[dict[str, Any]]:
    status = 503 if exc.reason == "disabled" else 400 if exc.malformed else 401
    return problem(status, exc.detail, reason=exc.reason)


# pydantic prefixes the message of a ValueError raised by a validator; the field is already named.
_VALUE_ERROR_PREFIX = "Value error, "


def field_error(request: Request[Any, Any, Any], key: str, message: str, given_source: object = None) -> FieldError:
    """A `FieldError` whatever reported it: every item has a key, a plain message and a source."""
    source = next((known for known in FIELD_SOURCES if known == given_source), None)
    if source is None:
        in_path, in_query = key in request.path_params, key in request.query_params
        source = "path" if key and in_path else "query" if key and in_query else "body"
    return {"key": key, "message": message.removeprefix(_VALUE_ERROR_PREFIX), "source": source}


def _request_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    items = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        field_error(request, str(item.get("key", "")), str(item.get("message", "")), item.get("source"))
        for item in items
        if isinstance(item, dict)
    ]
    return problem(400, exc.detail, errors=errors)


def _pydantic_validation_error(
    request: Request[Any, Any, Any], exc: pydantic.ValidationError
) -> Response[dict[str, Any]]:
    errors = [field_error(request, ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
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

    One line per failure (the request id is a field of the record); the traceback once per outage,
    not per request.
    Neither names the statement's parameters (see `describe_database_error`).
    """
    rid = request_id(request.scope)  # the access line's id; the response carries it in X-Request-ID
    trace = Verbatim(f"\n{redacted_traceback(exc)}" if outages.starts_outage() else "")
    logger.warning(
        "database unavailable: %s %s: %s%s",
        request.method,
        request.url.path,
        describe_database_error(exc),
        trace,
        extra={"request_id": rid},
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
