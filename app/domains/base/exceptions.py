"""Domain errors. They carry no HTTP: each adapter (API, flows, CLI) maps them once."""

from typing import Any


class DomainError(Exception):
    """Base of every error a domain raises on purpose."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class MalformedInputError(DomainError):
    """Input that is not even of the expected shape."""


class NotFoundError(DomainError):
    """The row does not exist, or the actor may not know that it exists."""


class ConflictError(DomainError):
    """The change would break a uniqueness rule or the current state of a row."""


class PermissionDeniedError(DomainError):
    """The actor is known but may not do this."""


class AuthenticationError(DomainError):
    """The credentials are missing, malformed, unknown, expired or revoked."""


class DomainValidationError(DomainError):
    """Input that is well-formed but breaks a business rule; `errors` lists the fields."""

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])


class TooManyAttemptsError(DomainError):
    """Too many failed attempts from this client or at this target: wait `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed attempts, retry later", retry_after=retry_after)
