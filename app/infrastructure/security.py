"""API-key format and hashing.

A key looks like `sk_<16 hex: public prefix>_<43 url-safe chars: secret>`: the `sk_` marker lets secret
scanners spot it, the prefix finds the row, and only an argon2id hash of the whole key is stored.
"""

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

KEY_MARKER = "sk_"
_KEY_PATTERN = re.compile(r"sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    prefix: str  # stored in clear, shown in listings
    key: str  # shown once to its owner


def generate_api_key() -> GeneratedKey:
    prefix = f"{KEY_MARKER}{secrets.token_hex(8)}"
    return GeneratedKey(prefix=prefix, key=f"{prefix}_{secrets.token_urlsafe(32)}")


def api_key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, or None."""
    match = _KEY_PATTERN.fullmatch(key)
    return f"{KEY_MARKER}{match.group(1)}" if match else None


class APIKeyHasher:
    """argon2id hashes, and an in-process memory of keys already verified.

    argon2 costs ~100 ms by design: paid when a key is created and the first time a process sees
    it. After that a SHA-256 of the key finds the stored hash it verified against. The row itself
    is still read on every request, so revocation and expiry apply at once in every process.
    """

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
