"""argon2id hashing of API keys (the key format itself is the users domain's rule).

argon2 costs ~100 ms by design: paid when a key is created and the first time a process sees it.
After that a SHA-256 of the key finds the stored hash it verified against. The row itself is still
read on every request, so revocation and expiry apply at once in every process.
"""

import hashlib
import hmac
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class APIKeyHasher:
    """Implements the users domain's `KeyHasher`, with an in-process memory of verified keys."""

    def __init__(self, time_cost: int, memory_cost_kib: int, remember: int = 10_000) -> None:
        self._argon2 = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib)
        self._verified: dict[bytes, str] = {}
        self._remember = remember
        self._lock = threading.Lock()

    def hash(self, key: str) -> str:
        return self._argon2.hash(key)

    def verify(self, key: str, stored_hash: str) -> bool:
        digest = hashlib.sha256(key.encode()).digest()
        remembered = self._verified.get(digest)
        if remembered is not None and hmac.compare_digest(remembered, stored_hash):
            return True
        try:
            self._argon2.verify(stored_hash, key)
        except (VerificationError, InvalidHashError):
            return False
        with self._lock:
            if len(self._verified) >= self._remember:
                self._verified.pop(next(iter(self._verified)))
            self._verified[digest] = stored_hash
        return True
