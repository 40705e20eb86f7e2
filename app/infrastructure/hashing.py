"""argon2id hashing of API keys (the key format itself is the users domain's rule).

argon2 costs ~100 ms by design: paid when a key is created and the first time a process sees it.
After that a SHA-256 of the key finds the stored hash it verified against. The row itself is still
read on every request, so revocation and expiry apply at once in every process.
"""

import hashlib
import hmac
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.infrastructure import metrics


class APIKeyHasher:
    """Implements the users domain's `KeyHasher`, with an in-process memory of verified keys."""

    def __init__(self, time_cost: int, memory_cost_kib: int, remember: int = 10_000, concurrent: int = 2) -> None:
        self._argon2 = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib)
        self._verified: dict[bytes, str] = {}
        # prefix -> its key's `secret_check`, learnt when a wrong secret was refused: further wrong
        # secrets for that prefix are refused without reading the row.
        self._checks: dict[str, str] = {}
        self._remember = remember
        self._lock = threading.Lock()
        # At most `concurrent` argon2 runs at once: they cannot take every worker's CPU and memory.
        self._slots = threading.BoundedSemaphore(concurrent)
        # Concurrent first uses of one key wait for the first verification instead of repeating it.
        self._stripes = [threading.Lock() for _ in range(64)]

    def is_remembered(self, key: str, stored_hash: str) -> bool:
        """Verified before in this process: no argon2 needed."""
        remembered = self._verified.get(hashlib.sha256(key.encode()).digest())
        return remembered is not None and hmac.compare_digest(remembered, stored_hash)

    def refuses_at_once(self, prefix: str, check: str) -> bool:
        """A secret whose check differs from the one its prefix was seen with: certainly wrong."""
        known = self._checks.get(prefix)
        return known is not None and not hmac.compare_digest(known, check)

    def learn_check(self, prefix: str, check: str) -> None:
        with self._lock:
            if prefix not in self._checks and len(self._checks) >= self._remember:
                self._checks.pop(next(iter(self._checks)))
            self._checks[prefix] = check

    def hash(self, key: str) -> str:
        return self._argon2.hash(key)

    def verify(self, key: str, stored_hash: str) -> bool:
        digest = hashlib.sha256(key.encode()).digest()
        if self.is_remembered(key, stored_hash):
            return True
        with self._stripes[digest[0] % len(self._stripes)]:
            if self.is_remembered(key, stored_hash):  # verified while this request waited
                return True
            asked = time.perf_counter()
            try:
                with self._slots:
                    waited = time.perf_counter() - asked
                    self._argon2.verify(stored_hash, key)
            except (VerificationError, InvalidHashError):
                metrics.recorder.argon2_verified(False, waited)
                return False
            metrics.recorder.argon2_verified(True, waited)
        with self._lock:
            if len(self._verified) >= self._remember:
                self._verified.pop(next(iter(self._verified)))
            self._verified[digest] = stored_hash
        return True
