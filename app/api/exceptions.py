"""Every error leaves as RFC 9457 problem details. Domain errors are mapped to HTTP here, once."""

import logging
from http import HTTPStatus
from typing import Any

import pydantic
from advanced_alchemy.exceptions import NotFoundError as RepositoryNotFoundError
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from app.domains.base.exceptions import (
    AuthenticationError,
    ConflictError,
    DomainError,
    DomainValidationError,
    MalformedInputError,
    NotFoundError,
    PermissionDeniedError,
)
from app.infrastructure.svix import WebhookRejected

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    MalformedInputError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    DomainValidationError: 422,
}


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _domain_error(_: Request, exc: DomainError) -> Response[dict[str, Any]]:
    status = next(code for kind, code in DOMAIN_ERROR_STATUS.items() if isinstance(exc, kind))
    headers = {"WWW-Authenticate": 'Bearer, ApiKey realm="X-API-Key"'} if status == 401 else None
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
    Exception: _unexpected_error,
}
