"""Failed authentications, counted per client and per key prefix, in this process.

A wrong secret for a known prefix costs an argon2 verification (~100 ms of CPU, 64 MiB). Past a
few failures a minute, the same client or the same prefix is refused at once (429) until the window
moves on. Counts live in this process: with several processes each counts on its own (a shared
store would be needed for one global count).
"""

import math
import threading
import time
from collections import defaultdict, deque


class AttemptLimiter:
    """Implements the users domain's `FailedAttempts`."""

    def __init__(self, per_client: int, per_key: int, window_seconds: float = 60.0) -> None:
        self._limits = {"client": per_client, "key": per_key}
        self._window = window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def retry_after(self, client: str | None, key: str) -> int | None:
        """Seconds until `client` and `key` may try again, or None when they may now."""
        now = time.monotonic()
        waits = []
        with self._lock:
            for kind, name in (("client", client), ("key", key)):
                if name is None:
                    continue
                failures = self._recent((kind, name), now)
                if len(failures) >= self._limits[kind]:
                    waits.append(failures[0] + self._window - now)
        return math.ceil(max(waits)) if waits else None

    def failed(self, client: str | None, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            for kind, name in (("client", client), ("key", key)):
                if name is not None:
                    self._recent((kind, name), now).append(now)

    def _recent(self, slot: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures[slot]
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[slot]  # memory stays bounded by the active attackers
            failures = self._failures[slot]
        return failures
