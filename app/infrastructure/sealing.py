"""Data sealed under a secret the server does not keep: AES-256-GCM with a key derived (HKDF-SHA256)
from that secret, bound to a context.

Used for stored idempotent responses: the secret is the client's Idempotency-Key, which only a hash
of is stored, so whoever reads the database (or a backup) cannot open a response, and the client
that retries with its key can. `context` (the actor, the purpose) is both the HKDF `info` and the
AEAD's associated data: a sealed value copied to another row does not open there.
"""

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12  # AES-GCM's standard nonce; random, and each derived key seals one value anyway
_SALT = b"app.infrastructure.sealing/v1"


class SealBrokenError(ValueError):
    """The sealed value does not open with this secret and context (tampered, or another row's)."""


def secret_digest(secret: str, purpose: bytes) -> str:
    """A SHA-256 of the secret, separated by `purpose` from the key `seal` derives: what is stored to
    find the row again. (Not a password hash: clients' keys are meant to be random, e.g. UUIDs.)"""
    return hashlib.sha256(purpose + b"\x00" + secret.encode()).hexdigest()


def _key(secret: str, context: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=context).derive(secret.encode())
    return AESGCM(derived)


def seal(secret: str, context: bytes, plaintext: bytes) -> bytes:
    """The nonce followed by the ciphertext and its tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _key(secret, context).encrypt(nonce, plaintext, context)


def unseal(secret: str, context: bytes, sealed: bytes) -> bytes:
    try:
        return _key(secret, context).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
    except InvalidTag:
        raise SealBrokenError("the sealed value does not open with this secret") from None
