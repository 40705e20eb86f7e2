"""Verification of Clerk session tokens (RS256 JWTs), with every check Clerk's docs call for.

Failures raise `TokenRejected` with a machine-readable `reason`; nothing here touches the network
except `PyJWKClient`, and only when no PEM key is configured (call `verify` from a worker thread).
"""

import re
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

# The `cat` header of session tokens; JWT templates and machine tokens share the key, not this.
SESSION_TOKEN_CATEGORY = "cl_B7d4PD111AAA"  # noqa: S105
LEEWAY_SECONDS = 5
CLERK_ID = re.compile(r"[A-Za-z0-9_]{1,64}")  # user_2abc...: what a `users.clerk_id` can hold
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "sub", "sid")


class TokenRejected(Exception):  # noqa: N818 (a verdict, not an error of ours)
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SessionClaims:
    user_id: str  # sub: Clerk's user id
    session_id: str  # sid
    claims: dict[str, Any]


class ClerkTokenVerifier:
    """`azp` policy, Clerk's SDK's: with authorized parties configured, `azp` must be present and
    equal one of them exactly. `accept_missing_azp` (an explicit opt-in, for native clients that send
    none) lets a token without `azp` in through the `Authorization` header; never through a cookie,
    which the browser attaches on its own. With no parties configured (development only) a present
    `azp` is not checked."""

    def __init__(
        self,
        issuer: str,
        authorized_parties: list[str],
        pem_key: str | None = None,
        jwks_url: str | None = None,
        jwks_cooldown_seconds: float = 30,
        *,
        accept_missing_azp: bool = False,
    ) -> None:
        self.issuer = issuer
        self.authorized_parties = frozenset(authorized_parties)
        self.accept_missing_azp = accept_missing_azp
        self._pem_key = load_pem_public_key(pem_key.replace("\\n", "\n").encode()) if pem_key else None
        self._jwks = None
        if not pem_key and jwks_url:
            self._jwks = jwt.PyJWKClient(jwks_url, lifespan=300, timeout=5, cooldown_duration=jwks_cooldown_seconds)

    def verify(self, token: str, *, from_cookie: bool = False) -> SessionClaims:
        # With a PEM key the token is parsed once; a JWKS needs its header first (for the kid).
        key = self._pem_key if self._pem_key is not None else self._signing_key(self._header(token))
        header, claims = self._decode(token, key)
        if header.get("alg") != "RS256":
            raise TokenRejected("algorithm", "session token must be signed with RS256")
        if header.get("cat") is not None and header["cat"] != SESSION_TOKEN_CATEGORY:
            raise TokenRejected("token_category", "not a session token (JWT template or machine token)")
        if not claims.get("sub") or not claims.get("sid"):
            raise TokenRejected("missing_claim", "session token lacks sub or sid")
        if not isinstance(claims["sub"], str) or not CLERK_ID.fullmatch(claims["sub"]):
            raise TokenRejected("malformed", "session token's sub is not a Clerk user id")
        azp = claims.get("azp")
        if azp is None:
            if from_cookie or (self.authorized_parties and not self.accept_missing_azp):
                raise TokenRejected("authorized_party", "the session token names no authorized party (azp)")
        elif self.authorized_parties and azp not in self.authorized_parties:
            raise TokenRejected("authorized_party", f"authorized party {azp!r} is not allowed")
        if claims.get("sts") == "pending":
            raise TokenRejected("pending_session", "the session is pending: treated as signed out")
        return SessionClaims(user_id=claims["sub"], session_id=claims["sid"], claims=claims)

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        try:
            return jwt.get_unverified_header(token)
        except jwt.DecodeError as error:
            raise TokenRejected("malformed", "session token is not a JWT") from error

    def _signing_key(self, header: dict[str, Any]) -> Any:
        if self._pem_key is not None:
            return self._pem_key
        if self._jwks is None:
            raise TokenRejected("key_unavailable", "no key is configured to verify session tokens")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("unknown_key", "session token names no key (kid)")
        try:
            return self._jwks.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError as error:
            raise TokenRejected("key_unavailable", "the signing keys could not be fetched") from error
        except jwt.PyJWKClientError as error:
            raise TokenRejected("unknown_key", f"no signing key with kid {kid!r}") from error

    def _decode(self, token: str, key: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The verified header and claims."""
        try:
            decoded = jwt.decode_complete(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenRejected("expired", "session token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise TokenRejected("not_yet_valid", f"session token is not valid yet ({error})") from error
        except jwt.InvalidIssuerError as error:
            raise TokenRejected("issuer", "session token was issued by another issuer") from error
        except jwt.MissingRequiredClaimError as error:
            raise TokenRejected("missing_claim", f"session token lacks the {error.claim!r} claim") from error
        except jwt.InvalidSignatureError as error:
            raise TokenRejected("signature", "session token signature does not verify") from error
        except jwt.InvalidAlgorithmError as error:
            raise TokenRejected("algorithm", "session token must be signed with RS256") from error
        except jwt.InvalidTokenError as error:
            raise TokenRejected("malformed", f"session token is invalid ({error})") from error
        return decoded["header"], decoded["payload"]
