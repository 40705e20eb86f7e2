"""Failed authentications, counted per client and per key prefix, in this process.

A wrong secret is refused by the key's stored check before any argon2 runs (see
`app.domains.users.api_keys.secret_check`), so these limits guard nothing expensive: past a few
failures a minute, the same client or the same prefix gets 429 and a Retry-After instead of 401.
A valid key is checked whatever the counts say, so nobody can lock a key out by failing on its
prefix or from its address. The exception is a key made before secret checks existed: until its
first successful use it has only argon2, and the limits are checked before running it.

Counts live in each process: with several, a client gets a 429 later, which costs nothing, since
refusing a wrong secret is as cheap as refusing a request without credentials.
"""

import math
import threading
import time
from collections import deque


class AttemptLimiter:
    """Implements the users domain's `FailedAttempts`."""

    def __init__(self, per_client: int, per_key: int, window_seconds: float = 60.0, prune_above: int = 10_000) -> None:
        self._limits = {"client": per_client, "key": per_key}
        self._window = window_seconds
        # The latest `limit` failure times of each slot: enough to tell whether it is at its limit.
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        # Expired slots are dropped when the table doubles past its last size (at least `prune_above`):
        # memory stays bounded by the failures of the last window, at a constant amortised cost.
        self._min_prune_above = self._prune_above = prune_above

    def retry_after(self, client: str | None, key: str) -> int | None:
        """Seconds until `client` and `key` are both under their limits, or None when they are now."""
        with self._lock:
            return self._wait(client, key, time.monotonic())

    def failed(self, client: str | None, key: str) -> int | None:
        """Count a failure; the wait when the client or the key was already at its limit."""
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > self._prune_above:
                self._prune(now)
            wait = self._wait(client, key, now)
            for slot in self._slots(client, key):
                failures = self._failures.get(slot)
                if failures is None:
                    failures = self._failures[slot] = deque(maxlen=self._limits[slot[0]])
                failures.append(now)
            return wait

    def _slots(self, client: str | None, key: str) -> list[tuple[str, str]]:
        return [("client", client), ("key", key)] if client is not None else [("key", key)]

    def _wait(self, client: str | None, key: str, now: float) -> int | None:
        waits = []
        for slot in self._slots(client, key):
            failures = self._failures.get(slot)
            if failures is not None and len(failures) >= self._limits[slot[0]] and failures[0] > now - self._window:
                waits.append(failures[0] + self._window - now)  # when the oldest of them leaves
        return math.ceil(max(waits)) if waits else None

    def _prune(self, now: float) -> None:
        stale = [slot for slot, failures in self._failures.items() if failures[-1] <= now - self._window]
        for slot in stale:
            del self._failures[slot]
        self._prune_above = max(self._min_prune_above, 2 * len(self._failures))
