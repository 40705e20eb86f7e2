"""The verifier remembers tokens it accepted, until their expiry, and nothing it refused."""

import asyncio
import time
from dataclasses import replace

import pytest

from app.infrastructure.clerk_session_tokens import (
    VERIFIED_TOKEN_MAX_SECONDS,
    ClerkTokenVerifier,
    TokenRejected,
    VerifiedToken,
    VerifiedTokens,
)
from tests.clerk_helpers import ALLOWED_ORIGIN, ISSUER, SigningKey, jwks_server

KEY = SigningKey("ins_cache")
FORGER = SigningKey("ins_cache")  # same kid, another key


def verifier(**options: object) -> ClerkTokenVerifier:
    return ClerkTokenVerifier(ISSUER, [ALLOWED_ORIGIN], pem_key=KEY.public_pem, **options)  # type: ignore[arg-type]


def test_an_accepted_token_is_remembered_until_its_expiry_at_most() -> None:
    checker = verifier()
    token = KEY.mint(sub="user_a", exp=int(time.time()) + 30)
    assert checker.verify(token).user_id == "user_a"
    entry = checker.verified.get(token)
    assert entry is not None
    assert entry.until == pytest.approx(time.time() + 30, abs=2)
    assert checker.verify(token).user_id == "user_a"  # from memory
    long_lived = KEY.mint(sub="user_a", exp=int(time.time()) + 3600)
    checker.verify(long_lived)
    entry = checker.verified.get(long_lived)
    assert entry is not None
    assert entry.until <= time.time() + VERIFIED_TOKEN_MAX_SECONDS  # checked again within a minute


def test_a_past_entry_is_forgotten_and_the_token_checked_in_full() -> None:
    checker = verifier()
    token = KEY.mint(sub="user_a", exp=int(time.time()) - 60)  # expired: refused by the full check
    with pytest.raises(TokenRejected, match="expired"):
        checker.verify(token)
    assert len(checker.verified) == 0
    fake = VerifiedToken({"alg": "RS256", "kid": KEY.kid}, {"sub": "user_a", "sid": "s"}, None, time.time() - 1)
    checker.verified.put(token, fake)  # as if remembered, and now past its time
    with pytest.raises(TokenRejected, match="expired"):
        checker.verify(token)
    assert checker.verified.get(token) is None


def test_refused_tokens_are_never_remembered() -> None:
    checker = verifier()
    forged = FORGER.mint(sub="user_a")
    for _ in range(2):
        with pytest.raises(TokenRejected, match="signature"):
            checker.verify(forged)
    wrong_party = KEY.mint(sub="user_a", azp="https://evil.example")
    with pytest.raises(TokenRejected, match="authorized party"):
        checker.verify(wrong_party)  # signed, but refused: not remembered either
    assert len(checker.verified) == 0


def test_the_checks_beyond_the_signature_run_on_every_use() -> None:
    """Remembered through the header, a token without `azp` is still refused from a cookie."""
    checker = verifier(accept_missing_azp=True)
    token = KEY.mint(sub="user_a", azp=None)
    assert checker.verify(token).user_id == "user_a"
    assert checker.verified.get(token) is not None
    with pytest.raises(TokenRejected, match="no authorized party"):
        checker.verify(token, from_cookie=True)


def test_the_memory_is_bounded_expired_first_then_oldest() -> None:
    tokens = VerifiedTokens(max_entries=2)
    now = time.time()
    entry = VerifiedToken({}, {}, None, now + 60)
    tokens.put("a", replace(entry, until=now - 1))
    tokens.put("b", entry)
    tokens.put("c", entry)  # "a" had expired: it goes
    assert [tokens.get(name) is not None for name in "abc"] == [False, True, True]
    tokens.put("d", entry)  # none expired: the oldest goes
    assert [tokens.get(name) is not None for name in "bcd"] == [False, True, True]
    assert len(tokens) == 2


def test_a_withdrawn_key_stops_its_remembered_tokens() -> None:
    old, new = SigningKey("ins_old"), SigningKey("ins_new")
    with jwks_server([old]) as (url, keys, _):
        checker = ClerkTokenVerifier(ISSUER, [ALLOWED_ORIGIN], jwks_url=url, jwks_min_refresh_seconds=0)
        token = old.mint(sub="user_a")
        asyncio.run(checker.resolve_keys([token]))
        assert checker.verify(token).user_id == "user_a"
        assert checker.verified.get(token) is not None
        keys[:] = [new]  # Clerk withdrew the old key; the next fetch drops it
        asyncio.run(checker.resolve_keys([new.mint()]))
        with pytest.raises(TokenRejected, match="no signing key"):
            checker.verify(token)
