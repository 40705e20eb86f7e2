"""Every error leaves as RFC 9457 problem details. Domain errors are mapped to HTTP here, once."""

import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pydantic
from advanced_alchemy.exceptions import NotFoundError as RepositoryNotFoundError
from advanced_alchemy.exceptions import RepositoryError
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
from app.infrastructure.svix import WebhookRejected

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5


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


def _domain_error(request: Request, exc: DomainError) -> Response[dict[str, Any]]:
    status = next(code for kind, code in DOMAIN_ERROR_STATUS.items() if isinstance(exc, kind))
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer, ApiKey realm="X-API-Key"'}
    elif status == 429:
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
        )
    return problem(status, exc.detail, headers=headers, **exc.extra)


def _webhook_rejected(_: Request, exc: WebhookRejected) -> Response[dict[str, Any]]:
    status = 503 if exc.reason == "disabled" else 400 if exc.malformed else 401
    return problem(status, exc.detail, reason=exc.reason)


def _request_validation_error(_: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    return problem(400, exc.detail, errors=exc.extra or [])


def _pydantic_validation_error(_: Request, exc: pydantic.ValidationError) -> Response[dict[str, Any]]:
    errors = [{"key": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
    return problem(400, "invalid parameters", errors=errors)


def _http_error(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    return problem(exc.status_code, exc.detail, headers=exc.headers, **extra)


def _repository_not_found(_: Request, exc: RepositoryNotFoundError) -> Response[dict[str, Any]]:
    return problem(404, "not found")


def _database_unavailable(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """An unreachable database, a pool with no free connection: retry later, not a 500."""
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
    return problem(503, "the database is unavailable, retry later", headers=headers)


def _repository_error(request: Request, exc: RepositoryError) -> Response[dict[str, Any]]:
    """advanced-alchemy wraps every statement error; unwrap what is an outage."""
    if isinstance(exc.__cause__, sa_exc.OperationalError | sa_exc.TimeoutError):
        return _database_unavailable(request, exc.__cause__)
    return _unexpected_error(request, exc)


def _too_deep(_: Request, exc: RecursionError) -> Response[dict[str, Any]]:
    """msgspec raises RecursionError on JSON nested deeper than it decodes (10 000 `[`, say)."""
    return problem(400, "the request body is nested too deeply")


def _unexpected_error(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal server error")


exception_handlers: ExceptionHandlersMap = {
    DomainError: _domain_error,
    WebhookRejected: _webhook_rejected,
    ValidationException: _request_validation_error,
    pydantic.ValidationError: _pydantic_validation_error,
    HTTPException: _http_error,
    RepositoryNotFoundError: _repository_not_found,
    RepositoryError: _repository_error,
    sa_exc.OperationalError: _database_unavailable,
    sa_exc.TimeoutError: _database_unavailable,
    RecursionError: _too_deep,
    Exception: _unexpected_error,
}
