"""What makes two requests "the same" for an idempotency key: method, path and body, the body
compared as JSON (key order and whitespace do not count), so a client that re-serialises its
retry still replays, and one that changes a value is told it reused the key."""

import hashlib
import json

import msgspec


def canonical_body(body: bytes) -> bytes:
    """A JSON body with sorted keys and no whitespace; anything else (empty, not JSON) as sent."""
    if not body.strip():
        return b""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_digest(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big") + part)  # length-prefixed: no two splits collide
    return digest.hexdigest()
