"""Verification of Clerk session tokens (RS256 JWTs), with every check Clerk's docs call for.

Failures raise `TokenRejected` with a machine-readable `reason`. `verify` (in a worker thread) never
touches the network: with a PEM key there is none; with a JWKS, `resolve_keys` (on the event loop,
before the request reaches its thread) fetches the keys the request's tokens name, into a cache
`verify` only reads.

A browser sends the same token with every request until it expires (Clerk's live 60 s), and its
RS256 signature check costs about a sixth of a request's CPU. So a token whose signature and claims
verified is remembered (`VerifiedTokens`), keyed by its exact text, until the earlier of its `exp`
and VERIFIED_TOKEN_MAX_SECONDS after it was checked, while the key that verified it is still the
one its `kid` names; every other check (`alg`, `cat`, `sub`, `azp`, `sts`, `o`) runs on each use.
Nothing that failed is remembered: a refused token is checked in full each time.
"""

import base64
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

if TYPE_CHECKING:
    from app.infrastructure.jwks import JWKSCache

# The `cat` header of session tokens; JWT templates and machine tokens share the key, not this.
SESSION_TOKEN_CATEGORY = "cl_B7d4PD111AAA"  # noqa: S105
LEEWAY_SECONDS = 5
CLERK_ID = re.compile(r"[A-Za-z0-9_]{1,64}")  # user_2abc..., org_2abc...: what a `clerk_id` can hold
ROLE = re.compile(r"[A-Za-z0-9_:-]{1,64}")  # admin, member, org:billing...
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "sub", "sid")
VERIFIED_TOKENS_MAX = 4096  # ~10 MB at most: tokens of 4096 sessions active in the last minute
VERIFIED_TOKEN_MAX_SECONDS = 60.0  # a token with a longer life is verified again after this


class TokenRejected(Exception):  # noqa: N818 (a verdict, not an error of ours)
    def __init__(self, reason: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after  # set when the token may be valid but cannot be checked yet


@dataclass(frozen=True, slots=True)
class ActiveOrganization:
    """The `o` claim of a v2 session token: the session's active organization and the user's role
    there (`rol`, e.g. `admin`). Its `per` and `fpm` (the role's feature permissions) are not read:
    what a member may do here is this app's rule, from the stored role."""

    clerk_id: str  # o.id
    slug: str | None  # o.slg
    role: str  # o.rol


@dataclass(frozen=True, slots=True)
class SessionClaims:
    user_id: str  # sub: Clerk's user id
    session_id: str  # sid
    claims: dict[str, Any]
    organization: ActiveOrganization | None = None  # None: no active organization


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    key: Any  # the key its signature verified with
    until: float  # time.time() after which it is verified again


class VerifiedTokens:
    """Verified tokens by their exact text, each until its `until`; at most `max_entries` (when
    full, the expired go first, then the oldest). Shared by the worker threads: one lock."""

    def __init__(self, max_entries: int = VERIFIED_TOKENS_MAX) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, VerifiedToken] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> VerifiedToken | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is not None and time.time() >= entry.until:
                del self._entries[token]
                return None
        return entry

    def put(self, token: str, entry: VerifiedToken) -> None:
        with self._lock:
            if token not in self._entries and len(self._entries) >= self.max_entries:
                now = time.time()
                for expired in [name for name, old in self._entries.items() if now >= old.until]:
                    del self._entries[expired]
                if len(self._entries) >= self.max_entries:
                    del self._entries[next(iter(self._entries))]  # the oldest: dicts keep insertion order
            self._entries[token] = entry

    def __len__(self) -> int:
        return len(self._entries)


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
        *,
        jwks_timeout_seconds: float = 2.0,
        jwks_min_refresh_seconds: float = 10.0,
        accept_missing_azp: bool = False,
    ) -> None:
        self.issuer = issuer
        self.authorized_parties = frozenset(authorized_parties)
        self.accept_missing_azp = accept_missing_azp
        self._pem_key = load_pem_public_key(pem_key.replace("\\n", "\n").encode()) if pem_key else None
        self._jwks = None
        if not pem_key and jwks_url:
            # Imported only here: its HTTP client (httpx) costs ~40 ms of a start with a PEM key.
            from app.infrastructure.jwks import JWKSCache  # noqa: PLC0415

            self._jwks = JWKSCache(
                jwks_url, timeout_seconds=jwks_timeout_seconds, min_refresh_seconds=jwks_min_refresh_seconds
            )
        self.fetches_keys = self._jwks is not None  # else `resolve_keys` has nothing to do
        self.verified = VerifiedTokens()

    async def resolve_keys(self, tokens: Iterable[str]) -> None:
        """On the event loop, before `verify`: have the keys these tokens name cached if they can be,
        waiting at most the JWKS timeout. When no token could be verified for want of its key, raises
        the `TokenRejected` that `verify` would (so the request never takes a worker thread); with a
        malformed token, leaves the verdict to `verify`. With a PEM key: nothing to do."""
        jwks = self._jwks
        if jwks is None:
            return
        kids = []
        for token in tokens:
            kid = unverified_kid(token)
            if kid is None:
                return
            if jwks.get(kid) is not None:  # the hot path: a cached key
                jwks.refresh_if_stale()
                return
            kids.append(kid)
        await jwks.fetched()
        if not any(jwks.get(kid) is not None for kid in kids):
            raise self._missing_key(jwks, kids[0])

    def verify(self, token: str, *, from_cookie: bool = False) -> SessionClaims:
        verified = self.verified.get(token)
        if verified is not None and self._still_signed(verified):
            header, claims, key = verified.header, verified.claims, None
        else:
            key = self._pem_key if self._pem_key is not None else self._signing_key(token)
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
        session = SessionClaims(
            user_id=claims["sub"], session_id=claims["sid"], claims=claims, organization=active_organization(claims)
        )
        if key is not None:  # verified just now, and accepted: remembered
            until = min(float(claims["exp"]), time.time() + VERIFIED_TOKEN_MAX_SECONDS)
            self.verified.put(token, VerifiedToken(header, claims, key, until))
        return session

    def _still_signed(self, verified: VerifiedToken) -> bool:
        """The key that verified the token is still the one its `kid` names (a JWKS key Clerk
        withdrew stops verifying the tokens it signed, remembered or not)."""
        return self._jwks is None or self._jwks.get(verified.header.get("kid", "")) is verified.key

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        try:
            return jwt.get_unverified_header(token)
        except jwt.DecodeError as error:
            raise TokenRejected("malformed", "session token is not a JWT") from error

    def _signing_key(self, token: str) -> Any:
        """The cached JWKS key the token names (never fetched here: see `resolve_keys`)."""
        if self._jwks is None:
            raise TokenRejected("key_unavailable", "no key is configured to verify session tokens")
        kid = unverified_kid(token)
        if kid is None:
            self._header(token)  # a token that is no JWT is malformed
            raise TokenRejected("unknown_key", "session token names no key (kid)")
        key = self._jwks.get(kid)
        if key is None:
            raise self._missing_key(self._jwks, kid)
        return key

    @staticmethod
    def _missing_key(jwks: "JWKSCache", kid: str) -> TokenRejected:
        """Unknown when the JWKS was just read whole and lacks it; else unavailable: the token may
        be valid (a 401 would sign the user out), so the caller is told to retry."""
        if jwks.complete:
            return TokenRejected("unknown_key", f"no signing key with kid {kid[:64]!r}")
        return TokenRejected(
            "key_unavailable", "the signing keys could not be fetched, retry later", retry_after=jwks.retry_after()
        )

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


def active_organization(claims: dict[str, Any]) -> ActiveOrganization | None:
    """The active organization of verified claims (session token v2's `o`). v1 tokens (`org_id`,
    `org_role`...) are refused: their role names and permission lists differ, and Clerk's dashboard
    moves an instance to v2 in one click."""
    if "org_id" in claims and "o" not in claims:
        raise TokenRejected("token_version", "session token v1 organization claims are not accepted: use v2")
    organization = claims.get("o")
    if organization is None:
        return None
    if not isinstance(organization, dict):
        raise TokenRejected("malformed", "session token's o claim is not an object")
    clerk_id, slug, role = organization.get("id"), organization.get("slg"), organization.get("rol")
    if not isinstance(clerk_id, str) or not CLERK_ID.fullmatch(clerk_id):
        raise TokenRejected("malformed", "session token's o.id is not a Clerk organization id")
    if not isinstance(role, str) or not ROLE.fullmatch(role):
        raise TokenRejected("malformed", "session token's o.rol is not a role name")
    if slug is not None and not (isinstance(slug, str) and 0 < len(slug) <= 256 and "\x00" not in slug):
        raise TokenRejected("malformed", "session token's o.slg is not a slug")
    return ActiveOrganization(clerk_id=clerk_id, slug=slug, role=role)


def unverified_kid(token: str) -> str | None:
    """The `kid` of the token's header, read without verifying anything (only to pick a key), or
    None when the header does not parse. Cheaper than PyJWT's parser, which decodes every segment."""
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) and kid else None
