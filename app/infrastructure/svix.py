"""Verification of Svix-signed webhooks (Clerk delivers its webhooks through Svix).

Signature = base64(HMAC-SHA256(key, "{svix-id}.{svix-timestamp}." + raw body)), where the key is the
base64 part of the `whsec_...` secret; `svix-signature` holds space-separated `v1,<base64>` entries.
"""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 5 * 60
MAX_TIMESTAMP_DIGITS = 12  # a longer integer overflows the float arithmetic of the tolerance check


class WebhookRejected(Exception):  # noqa: N818 (a verdict, not an error of ours)
    def __init__(self, reason: str, detail: str, *, malformed: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.malformed = malformed  # a malformed request (400) rather than a failed check (401)


class SvixVerifier:
    def __init__(self, secret: str) -> None:
        self._key = base64.b64decode(secret.removeprefix("whsec_"))

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
        """Check the headers against the raw body; returns the message id (`svix-id`)."""
        message_id = headers.get("svix-id", "")
        timestamp = headers.get("svix-timestamp", "")
        signatures = headers.get("svix-signature", "")
        for name, value in (("svix-id", message_id), ("svix-timestamp", timestamp), ("svix-signature", signatures)):
            if not value:
                raise WebhookRejected("missing_header", f"missing {name} header", malformed=True)
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
            raise WebhookRejected("malformed_header", "svix-timestamp must be Unix seconds", malformed=True)
        if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_SECONDS:
            raise WebhookRejected("timestamp", "svix-timestamp is more than 5 minutes away from now")

        signed = b"%s.%s.%s" % (message_id.encode(), timestamp.encode(), body)
        expected = hmac.new(self._key, signed, hashlib.sha256).digest()
        for entry in signatures.split():
            version, _, encoded = entry.partition(",")
            if version != "v1":
                continue
            try:
                candidate = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            if hmac.compare_digest(candidate, expected):
                return message_id
        raise WebhookRejected("signature", "no v1 signature matches the body")
