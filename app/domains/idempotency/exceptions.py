"""Errors of the idempotency domain, with the `reason` a client branches on."""

from app.domains.base.exceptions import ConflictError, DomainValidationError

# Seconds a client should wait before retrying a request whose key is still in use.
IN_FLIGHT_RETRY_AFTER_SECONDS = 1


class IdempotencyKeyReusedError(DomainValidationError):
    """The key was used for another request (another body, path or tenant): 422, never replayed."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used for a different request; use a new key for a new request",
            [{"key": "Idempotency-Key", "message": "already used with another request body", "source": "header"}],
        )
        self.extra["reason"] = "idempotency_key_reused"


class IdempotencyKeyInFlightError(ConflictError):
    """The first request with this key is still running (longer than a duplicate waits): retry later."""

    def __init__(self) -> None:
        super().__init__(
            "a request with this Idempotency-Key is still being processed; retry after a moment",
            reason="idempotency_key_in_flight",
            retry_after=IN_FLIGHT_RETRY_AFTER_SECONDS,
        )
