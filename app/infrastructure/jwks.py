"""Clerk's signing keys from its JWKS: fetched on the event loop, read by worker threads.

A request whose token names a key the cache lacks waits for one shared fetch (single flight), at
most `timeout` seconds, as a coroutine: no worker thread ever waits on the network. A fetch starts
at most once per `min_refresh` seconds whatever the traffic, a failed one included, so neither a
sick endpoint nor a flood of made-up `kid`s costs more than that. Worker threads only read the
cache (`get`): a dict lookup.

A fetch fails when the endpoint is unreachable or slow, answers anything but 200, or sends no JWKS
with a usable RS256 key; the keys of the last good fetch are kept (tokens they sign still verify).
While the last fetch failed, requests no longer wait: the next fetch runs in the background and they
are told to retry (waiting for a fetch that will likely fail only delays the answer, and parked
requests all answered at once when it fails stall the event loop). One warning is logged when an
outage starts, and one when the JWKS answers again.
"""

import asyncio
import contextlib
import json
import logging
import math
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

logger = logging.getLogger(__name__)

# Known keys are refetched in the background after this, so a key Clerk withdrew stops verifying.
KEY_MAX_AGE_SECONDS = 300.0
MAX_JWKS_BYTES = 64 * 1024  # Clerk's set is about 1 KB


class JWKSUnusable(Exception):  # noqa: N818 (a verdict on the answer, like TokenRejected)
    """The endpoint answered, but not with a usable key set."""


class JWKSCache:
    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        min_refresh_seconds: float,
        max_age_seconds: float = KEY_MAX_AGE_SECONDS,
    ) -> None:
        self.url = url
        self.timeout = timeout_seconds
        self.min_refresh = min_refresh_seconds
        self.max_age = max_age_seconds
        self._ssl = httpx.create_ssl_context()  # built once: reading the CA bundle takes milliseconds
        self._keys: dict[str, Any] = {}  # replaced whole by a good fetch, never mutated
        self._healthy = False  # the last fetch succeeded
        self._in_outage = False  # the last fetch failed (logged once, when the outage began)
        self._stale_at = -math.inf
        self._next_fetch_at = -math.inf
        self._fetch: asyncio.Task[None] | None = None

    def get(self, kid: str) -> Any | None:
        """The public key with this kid, if cached (any thread; never touches the network)."""
        return self._keys.get(kid)

    @property
    def complete(self) -> bool:
        """The last fetch succeeded and none runs: a kid missing now is unknown to Clerk."""
        return self._healthy and self._fetch is None

    def retry_after(self) -> int:
        """Whole seconds until the next fetch may start, or 1 while one runs."""
        if self._fetch is not None:
            return 1
        return max(1, math.ceil(self._next_fetch_at - time.monotonic()))

    def refresh_if_stale(self) -> None:
        """On the event loop, after a hit: past their max age, the keys are refetched in the
        background (the request does not wait; the cached key still serves it)."""
        if time.monotonic() >= self._stale_at:
            self._start_fetch()

    async def fetched(self) -> None:
        """On the event loop, after a miss: wait for the running fetch, or one started now if the
        interval allows, and at most `timeout` seconds. Returns at once when no fetch may run, or
        when the last one failed (the next runs in the background)."""
        fetch = self._start_fetch()
        if fetch is not None and not self._in_outage:
            # On a timeout the fetch goes on (it ends within its own deadline); the request does not wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fetch), self.timeout)

    def _start_fetch(self) -> "asyncio.Task[None] | None":
        loop = asyncio.get_running_loop()
        if self._fetch is not None and self._fetch.get_loop() is loop:
            return self._fetch
        now = time.monotonic()
        if now < self._next_fetch_at:
            return None
        self._next_fetch_at = now + self.min_refresh
        self._fetch = loop.create_task(self._refresh())
        return self._fetch

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                keys = await self._download()
        except TimeoutError:
            self._failed(f"no complete answer within {self.timeout:g} s")
        except (httpx.HTTPError, JWKSUnusable) as error:
            self._failed(f"{error}" or type(error).__name__)
        except Exception as error:  # any failure is an outage: no new keys, one line, no traceback
            self._failed(f"{type(error).__name__}: {error}")
        else:
            self._succeeded(keys)
        finally:
            if self._fetch is asyncio.current_task():
                self._fetch = None

    async def _download(self) -> dict[str, Any]:
        limits = httpx.Limits(max_keepalive_connections=0)  # one fetch per interval: nothing to reuse
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}  # the size cap is on the wire
        async with (
            httpx.AsyncClient(verify=self._ssl, timeout=self.timeout, limits=limits) as client,
            client.stream("GET", self.url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise JWKSUnusable(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JWKSUnusable(f"the answer is larger than {MAX_JWKS_BYTES} bytes")
        return parse_jwks(bytes(body))

    def _failed(self, reason: str) -> None:
        self._healthy = False
        if not self._in_outage:
            self._in_outage = True
            logger.warning(
                "Clerk JWKS unavailable at %s: %s; session tokens whose key is not cached get 503 "
                "until it answers (one fetch every %g s at most)",
                self.url,
                reason,
                self.min_refresh,
            )

    def _succeeded(self, keys: dict[str, Any]) -> None:
        self._keys = keys
        self._healthy = True
        self._stale_at = time.monotonic() + self.max_age
        if self._in_outage:
            self._in_outage = False
            logger.warning("Clerk JWKS at %s answers again (%d usable keys)", self.url, len(keys))


def parse_jwks(body: bytes) -> dict[str, Any]:
    """kid -> RSA public key, for the entries usable to verify RS256; the rest are skipped."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise JWKSUnusable("the answer is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JWKSUnusable("the answer has no 'keys' list")
    keys = {}
    for entry in entries:
        if isinstance(entry, dict) and (kid := entry.get("kid")) and isinstance(kid, str) and _for_rs256(entry):
            try:
                key = jwt.PyJWK(entry, "RS256").key
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                continue
            if isinstance(key, RSAPublicKey):  # never a private key someone published by mistake
                keys[kid] = key
    if not keys:
        raise JWKSUnusable(f"no usable RS256 key among its {len(entries)} entries")
    return keys


def _for_rs256(entry: dict[str, Any]) -> bool:
    return (
        entry.get("kty") == "RSA"
        and entry.get("use", "sig") == "sig"
        and entry.get("alg", "RS256") == "RS256"
        and "d" not in entry
    )
