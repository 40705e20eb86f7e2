"""Accept no session token that Clerk's own SDK refuses: the verifier's decisions against
`clerk-backend-api`'s networkless `authenticate_request`, same key, same authorized parties."""

import time

import httpx
import pytest
from clerk_backend_api.security import authenticate_request
from clerk_backend_api.security.types import AuthenticateRequestOptions

from app.infrastructure.clerk_session_tokens import ClerkTokenVerifier, TokenRejected
from tests.clerk_helpers import ALLOWED_ORIGIN, ISSUER, SigningKey

KEY = SigningKey("ins_parity")
PARTIES = [ALLOWED_ORIGIN, "http://localhost:3000"]
NOW = int(time.time())

MUTATIONS: dict[str, dict] = {
    "valid": {},
    "no azp": {"azp": None},
    "azp with a trailing slash": {"azp": ALLOWED_ORIGIN + "/"},
    "azp of another site": {"azp": "https://evil.example.test"},
    "azp of another port": {"azp": "http://localhost:3001"},
    "azp in another case": {"azp": ALLOWED_ORIGIN.upper()},
    "expired": {"exp": NOW - 60, "iat": NOW - 120, "nbf": NOW - 120},
    "not yet valid": {"nbf": NOW + 120, "iat": NOW + 120},
    "issued in the future": {"iat": NOW + 120},
    "no sid": {"sid": None},
    "no sub": {"sub": None},
    "pending session": {"sts": "pending"},
    "other issuer": {"iss": "https://clerk.other.test"},
}


def _sdk_accepts(token: str) -> bool:
    request = httpx.Request("GET", "https://api.example.test/me", headers={"Authorization": f"Bearer {token}"})
    options = AuthenticateRequestOptions(jwt_key=KEY.public_pem, authorized_parties=PARTIES)
    return authenticate_request(request, options).is_signed_in


def _app_accepts(token: str) -> bool:
    try:
        ClerkTokenVerifier(ISSUER, PARTIES, pem_key=KEY.public_pem).verify(token)
    except TokenRejected:
        return False
    return True


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_nothing_the_sdk_refuses_is_accepted(mutation: str) -> None:
    token = KEY.mint(**MUTATIONS[mutation])
    app, sdk = _app_accepts(token), _sdk_accepts(token)
    assert not (app and not sdk), f"{mutation}: accepted here, refused by Clerk's SDK"
    if mutation == "valid":
        assert app
        assert sdk
