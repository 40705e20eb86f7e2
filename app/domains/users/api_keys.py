"""The API-key format, a rule of this domain; hashing is the infrastructure's (`KeyHasher`).

A key looks like `sk_<16 hex: public prefix>_<43 url-safe chars: secret>`: the `sk_` marker lets secret
scanners spot it, the prefix finds the row, and only a slow hash of the whole key is stored, with a
short fast check of it (`secret_check`) that refuses a wrong secret without running the slow hash.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Protocol

KEY_MARKER = "sk_"
_KEY_PATTERN = re.compile(r"sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class KeyHasher(Protocol):
    def hash(self, key: str) -> str: ...

    def verify(self, key: str, stored_hash: str) -> bool: ...

    def is_remembered(self, key: str, stored_hash: str) -> bool:
        """Verified before: checking it again costs nothing."""
        ...

    def refuses_at_once(self, prefix: str, check: str) -> bool:
        """The prefix's key is known to have another `secret_check`: the secret is wrong."""
        ...

    def learn_check(self, prefix: str, check: str) -> None:
        """Remember a key's `secret_check` (after refusing a wrong secret for it)."""
        ...


class FailedAttempts(Protocol):
    """Failed authentications per client and per key prefix (the infrastructure keeps the counts)."""

    def retry_after(self, client: str | None, key: str) -> int | None:
        """Seconds to wait before trying again, or None."""
        ...

    def failed(self, client: str | None, key: str) -> int | None:
        """Count a failure; the seconds to wait when the client or the key was already at its limit."""
        ...


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    prefix: str  # stored in clear, shown in listings
    key: str  # shown once to its owner


def generate_api_key() -> GeneratedKey:
    prefix = f"{KEY_MARKER}{secrets.token_hex(8)}"
    return GeneratedKey(prefix=prefix, key=f"{prefix}_{secrets.token_urlsafe(32)}")


SECRET_CHECK_LENGTH = 8


def secret_check(key: str) -> str:
    """The first 32 bits of the key's SHA-256, stored beside its argon2 hash.

    A wrong secret fails this check (all but once in 4 billion tries), so it is refused for the price
    of a SHA-256 instead of an argon2 run: wrong secrets cannot cost the server CPU, and limits on
    failures never have to refuse a key before checking it. It tells nothing usable about the key:
    the other 224 bits of a 256-bit random secret stay behind argon2.
    """
    return hashlib.sha256(key.encode()).hexdigest()[:SECRET_CHECK_LENGTH]


def api_key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, or None."""
    match = _KEY_PATTERN.fullmatch(key)
    return f"{KEY_MARKER}{match.group(1)}" if match else None
