"""Real Clerk-shaped credentials for tests: RS256 session tokens, a local JWKS server, Svix signatures."""

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from svix.webhooks import Webhook

ISSUER = "https://clerk.example.test"
ALLOWED_ORIGIN = "https://app.example.test"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-signing-secret-0123456789ab").decode()
SAMPLES = Path(__file__).parent / "data" / "clerk"
SESSION_CATEGORY, TEMPLATE_CATEGORY, MACHINE_CATEGORY = "cl_B7d4PD111AAA", "cl_B7d4PD222AAA", "cl_B7d4PD333AAA"


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @property
    def jwk(self) -> dict[str, Any]:
        return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())), "kid": self.kid}

    def mint(self, headers: dict[str, Any] | None = None, algorithm: str = "RS256", **claims: Any) -> str:
        """A session token as Clerk issues it; pass a claim as None to leave it out."""
        return jwt.encode(
            session_claims(**claims), self.private, algorithm=algorithm, headers={"kid": self.kid, **(headers or {})}
        )


# The key a Clerk-configured app verifies session tokens with (the `clerk_client` fixture's).
SESSION_KEY = SigningKey("ins_session")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_claims(**overrides: Any) -> dict[str, Any]:
    """Clerk v2 session-token claims, valid now; an override of None leaves the claim out."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "user_2abcdefghijklmnop",
        "sid": "sess_2abcdefghijklmnop",
        "azp": ALLOWED_ORIGIN,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 60,
        "jti": secrets.token_hex(10),
        "v": 2,
        "fva": [0, -1],
        **overrides,
    }
    return {name: value for name, value in claims.items() if value is not None}


def organization_claim(clerk_id: str, role: str = "admin", slug: str | None = "acme", **extra: Any) -> dict[str, Any]:
    """The `o` claim of a v2 session token with an active organization: `KEY.mint(o=organization_claim(...))`."""
    claim = {"id": clerk_id, "slg": slug, "rol": role, "per": "", "fpm": "", **extra}
    return {name: value for name, value in claim.items() if value is not None}


def unsigned_token(claims: dict[str, Any], header: dict[str, Any], key: bytes | None = None) -> str:
    """A token built by hand: `alg: none`, or HMAC-signed with `key` (the confused-deputy attack)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(claims).encode())
    signature = b"" if key is None else b64(hmac.new(key, signing_input, hashlib.sha256).digest())
    return (signing_input + b"." + signature).decode()


Answer = Callable[[str, str | None], tuple[int, dict[str, str], Any]]


@contextmanager
def json_server(answer: Answer) -> Iterator[str]:
    """A real HTTP server on loopback: `answer(path, authorization)` -> (status, headers, JSON body).
    Yields its base URL (`http://127.0.0.1:<port>`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, payload = answer(self.path, self.headers.get("Authorization"))
            body = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def jwks_server(keys: list[SigningKey]) -> Iterator[tuple[str, list[SigningKey], list[int]]]:
    """A real HTTP JWKS endpoint on loopback. Mutate `keys` to rotate; `hits` counts fetches."""
    hits: list[int] = []

    def answer(_path: str, _authorization: str | None) -> tuple[int, dict[str, str], Any]:
        hits.append(1)
        return 200, {}, {"keys": [key.jwk for key in keys]}

    with json_server(answer) as url:
        yield f"{url}/.well-known/jwks.json", keys, hits


def svix_headers(body: bytes | str, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    """Headers Svix would send for this body, signed by the `svix` package itself."""
    msg_id = msg_id or f"msg_{secrets.token_hex(12)}"
    at = at or datetime.now(UTC)
    text = body.decode() if isinstance(body, bytes) else body
    signature = Webhook(WEBHOOK_SECRET).sign(msg_id, at, text)
    return {"svix-id": msg_id, "svix-timestamp": str(int(at.timestamp())), "svix-signature": signature}


def sign_bytes(body: bytes, msg_id: str, timestamp: int) -> str:
    """A v1 signature over arbitrary bytes (the svix package only signs text)."""
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def user_event(event_type: str, clerk_id: str, updated_at: int, email: str | None = None, **fields: Any) -> dict:
    """A user.created / user.updated / user.deleted envelope shaped like Clerk's."""
    if event_type == "user.deleted":
        data: dict[str, Any] = {"deleted": True, "id": clerk_id, "object": "user"}
    else:
        addresses = [{"id": f"idn_{clerk_id}", "email_address": email, "object": "email_address"}] if email else []
        data = {
            "id": clerk_id,
            "object": "user",
            "email_addresses": addresses,
            "primary_email_address_id": f"idn_{clerk_id}" if email else None,
            "first_name": fields.get("first_name"),
            "last_name": fields.get("last_name"),
            "image_url": fields.get("image_url"),
            "created_at": fields.get("created_at", 1_700_000_000_000),
            "updated_at": updated_at,
        }
    return {"data": data, "object": "event", "type": event_type, "timestamp": updated_at}
