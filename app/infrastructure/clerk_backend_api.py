"""A small sync client for Clerk's Backend API: it answers data or raises, and knows no business rule.

    with ClerkAPI(secret_key, "https://api.clerk.com/v1") as clerk:
        for page in clerk.user_pages(limit=500):
            ...

Users are listed as a JSON array; organizations and memberships as `{"data": [...], "total_count": N}`.

Rate limits (429 + Retry-After), server errors (5xx), timeouts and connection errors are retried
with exponential backoff, a bounded number of times; then `ClerkAPIError`. Other 4xx answers (a
wrong key, a bad parameter) raise at once: asking again would not help.
"""

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

MAX_PAGE_SIZE = 500  # Clerk's own limit for `limit`
MAX_IDS_PER_REQUEST = 100  # Clerk's limit for the `user_id` filter
_RETRIED_STATUSES = frozenset({408, 429, *range(500, 600)})  # worth asking again

logger = logging.getLogger(__name__)


class ClerkAPIError(Exception):
    """The Backend API refused a request, or kept failing it; `status` is the last HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Backoff:
    """How failed requests are retried. Tests pass `base_delay=0` and a `sleep` that records."""

    attempts: int = 5  # requests in all, the first one included
    base_delay: float = 0.5  # seconds before the 2nd attempt, doubled for each next one
    max_delay: float = 60.0  # cap on any wait, a server's Retry-After included
    sleep: Callable[[float], None] = field(default=time.sleep)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        wanted = retry_after if retry_after is not None else self.base_delay * 2 ** (attempt - 1)
        return max(0.0, min(wanted, self.max_delay))


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (Clerk sends seconds; an HTTP date is accepted too)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


class ClerkAPI:
    def __init__(
        self,
        secret_key: str,
        base_url: str = "https://api.clerk.com/v1",
        *,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.log = log or logger
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {secret_key}", "Accept": "application/json"},
            timeout=timeout,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- users -----------------------------------------------------------------------------------

    def list_users(self, limit: int, offset: int = 0, order_by: str = "+created_at") -> list[dict[str, Any]]:
        """One page of `GET /users`: Clerk's User objects."""
        _check_limit(limit)
        return self._get_list("users", {"limit": limit, "offset": offset, "order_by": order_by})

    def user_pages(self, limit: int, order_by: str = "+created_at") -> Iterator[list[dict[str, Any]]]:
        """Every page in turn, until one holds fewer than `limit` users (there is no total).

        Offset paging is not a snapshot: a user created meanwhile may show up twice or not at all,
        and one deleted meanwhile shifts the next pages, so a user may be skipped. Oldest first,
        new users land at the end rather than shifting every page.
        """
        return _pages(lambda offset: self.list_users(limit, offset, order_by), limit)

    def users_with_ids(self, user_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The users among these ids that exist in Clerk (`GET /users?user_id=...`, 100 at a time)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(user_ids), MAX_IDS_PER_REQUEST):
            chunk = list(user_ids[start : start + MAX_IDS_PER_REQUEST])
            found += self._get_list("users", {"user_id": chunk, "limit": MAX_IDS_PER_REQUEST})
        return found

    # -- organizations and memberships -----------------------------------------------------------

    def list_organizations(self, limit: int, offset: int = 0, order_by: str = "+created_at") -> list[dict[str, Any]]:
        """One page of `GET /organizations`: Clerk's Organization objects (oldest first by default,
        so organizations created meanwhile land at the end rather than shifting every page)."""
        _check_limit(limit)
        return self._get_data("organizations", {"limit": limit, "offset": offset, "order_by": order_by})

    def organization(self, organization_id: str) -> dict[str, Any] | None:
        """`GET /organizations/{id}`: the organization, or None when Clerk answers 404 (it is gone)."""
        path = f"organizations/{quote(organization_id, safe='')}"
        try:
            return self._get_object(path, {})
        except ClerkAPIError as error:
            if error.status == 404:
                return None
            raise

    def list_organization_memberships(
        self, organization_id: str, limit: int, offset: int = 0, order_by: str = "+created_at"
    ) -> list[dict[str, Any]]:
        """One page of `GET /organizations/{id}/memberships`: OrganizationMembership objects (each
        embeds its `organization` and its user's `public_user_data`). A 404 (the organization is
        gone) raises ClerkAPIError with `status` 404."""
        _check_limit(limit)
        path = f"organizations/{quote(organization_id, safe='')}/memberships"
        return self._get_data(path, {"limit": limit, "offset": offset, "order_by": order_by})

    def organization_membership_pages(self, organization_id: str, limit: int) -> Iterator[list[dict[str, Any]]]:
        """Every page of an organization's memberships in turn (offset paging, as `user_pages`)."""
        return _pages(lambda offset: self.list_organization_memberships(organization_id, limit, offset), limit)

    def user_organization_memberships(self, user_id: str) -> list[dict[str, Any]]:
        """Every membership of one user (`GET /users/{id}/organization_memberships`); none when
        Clerk answers 404 (the user is gone, and its memberships with it)."""
        path = f"users/{quote(user_id, safe='')}/organization_memberships"

        def fetch(offset: int) -> list[dict[str, Any]]:
            return self._get_data(path, {"limit": MAX_PAGE_SIZE, "offset": offset})

        found: list[dict[str, Any]] = []
        try:
            for page in _pages(fetch, MAX_PAGE_SIZE):
                found += page
        except ClerkAPIError as error:
            if error.status == 404:
                return []
            raise
        return found

    # -- transport -------------------------------------------------------------------------------

    def _get_list(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """A JSON array of objects (`GET /users`)."""
        body, status = self._get_json(path, params)
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise ClerkAPIError(f"GET /{path}: expected a JSON array of objects", status)
        return body

    def _get_data(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The `data` array of a paginated answer: `{"data": [...], "total_count": N}`."""
        body, status = self._get_json(path, params)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ClerkAPIError(f'GET /{path}: expected {{"data": [objects], ...}}', status)
        return data

    def _get_object(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        body, status = self._get_json(path, params)
        if not isinstance(body, dict):
            raise ClerkAPIError(f"GET /{path}: expected a JSON object", status)
        return body

    def _get_json(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
        """The decoded body of a 2xx answer, and its status."""
        response = self._get(path, params)
        try:
            return response.json(), response.status_code
        except ValueError as error:
            raise ClerkAPIError(f"GET /{path}: the response is not JSON", response.status_code) from error

    def _get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        """A 2xx response, after retries; raises ClerkAPIError otherwise."""
        attempts = self.backoff.attempts
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                response = self._client.get(path, params=params)
            except httpx.TransportError as error:  # timeouts, refused or dropped connections
                problem, status = f"{type(error).__name__}: {error}", None
            else:
                if response.is_success:
                    return response
                status = response.status_code
                problem = f"HTTP {status}{_error_message(response)}"
                if status not in _RETRIED_STATUSES:
                    raise ClerkAPIError(f"GET /{path} was refused: {problem}", status)
                if status == 429:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == attempts:
                raise ClerkAPIError(f"GET /{path} failed {attempts} times, last with {problem}", status)
            wait = self.backoff.delay(attempt, retry_after)
            self.log.warning(
                "Clerk API: GET /%s got %s (attempt %d of %d); retrying in %.1f s",
                path,
                problem,
                attempt,
                attempts,
                wait,
            )
            self.backoff.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")


def _pages(fetch: Callable[[int], list[dict[str, Any]]], limit: int) -> Iterator[list[dict[str, Any]]]:
    """`fetch(offset)` for offsets 0, limit, 2 * limit... until a page holds fewer than `limit` items."""
    offset = 0
    while True:
        page = fetch(offset)
        yield page
        if len(page) < limit:
            return
        offset += limit


def _error_message(response: httpx.Response) -> str:
    """Clerk's own error message ({"errors": [{"message": ...}]}), when there is one."""
    try:
        errors = response.json().get("errors") or []
        message = errors[0].get("long_message") or errors[0].get("message")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return f" ({str(message)[:200]})" if message else ""
