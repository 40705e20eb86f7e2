"""Clerk's JWKS off the request path: a hanging, broken or flooded JWKS holds no worker thread, costs
at most one fetch per interval, and answers a problem (401 or 503), never a 500.

The app runs under a live uvicorn with 4 worker threads (Litestar's TestClient cannot show a starved
thread pool) against a real JWKS endpoint on loopback whose behaviour each test switches. The forged
floods come from another process, so the API-key client measuring latency shares no GIL with them.
"""

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.infrastructure.config import PROJECT_ROOT, Settings
from app.infrastructure.database import Database
from app.infrastructure.jwks import MAX_JWKS_BYTES, JWKSCache, JWKSUnusable, parse_jwks
from tests.clerk_helpers import SigningKey
from tests.helpers import backend_name
from tests.test_concurrency import THREADS, serving

TIMEOUT, INTERVAL = 1.0, 1.0  # CLERK_JWKS_TIMEOUT_SECONDS, CLERK_JWKS_MIN_REFRESH_SECONDS
SLACK = 0.5  # scheduling margin on a shared machine, in seconds
KEY = SigningKey("ins_jwks")  # the instance key, published by the healthy JWKS


class FakeJWKS:
    """A JWKS endpoint on loopback: `mode` picks its answer; `fetches` records when each arrived."""

    def __init__(self) -> None:
        self.url = ""  # set once it listens
        self.mode = "healthy"
        self.keys = [KEY]
        self.fetches: list[float] = []
        self.released = threading.Event()  # ends the hanging answers at teardown

    def answer(self) -> tuple[int, str, bytes] | None:
        self.fetches.append(time.monotonic())
        keys: Any
        match self.mode:
            case "healthy":
                keys = [key.jwk for key in self.keys]
            case "hang":  # accepts, reads the request, never answers
                self.released.wait()
                return None
            case "html":
                return 200, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            case "not_found":
                return 404, "text/html", b"<html><body>Not Found</body></html>"
            case "empty":
                keys = []
            case "oversized":  # a valid set, padded past what is read
                keys = [{**KEY.jwk, "x5c": ["A" * MAX_JWKS_BYTES]}]
            case "unusable":  # a broken RSA key, an EC key, an HMAC secret, an encryption key
                keys = [
                    {"kty": "RSA", "kid": "ins_broken", "n": "not*base64", "e": "AQAB"},
                    {"kty": "EC", "kid": "ins_ec", "crv": "P-256", "x": "AA", "y": "AA"},
                    {"kty": "oct", "kid": "ins_hmac", "k": "c2VjcmV0"},
                    {**KEY.jwk, "use": "enc"},
                ]
        return 200, "application/json", json.dumps({"keys": keys}).encode()

    def fetches_since(self, start: float) -> int:
        return sum(1 for at in self.fetches if at >= start)


@pytest.fixture(scope="module")
def jwks() -> Iterator[FakeJWKS]:
    fake = FakeJWKS()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = fake.answer()
            if answer is None:
                return
            status, media_type, body = answer
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()


@dataclass
class Live:
    url: str
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        time.sleep(0.3)  # the log handler writes every 50 ms
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode()


@contextmanager
def serving_with_jwks(settings: Settings, jwks: FakeJWKS, folder: Path) -> Iterator[Live]:
    """The app under uvicorn, verifying session tokens against `jwks` (no PEM key)."""
    log = folder / "server.log"
    env = {
        "CLERK_JWT_KEY": "",
        "CLERK_JWKS_URL": jwks.url,
        "CLERK_JWKS_TIMEOUT_SECONDS": str(TIMEOUT),
        "CLERK_JWKS_MIN_REFRESH_SECONDS": str(INTERVAL),
    }
    with log.open("wb") as stderr, serving(settings, folder, stderr=stderr, **env) as url:
        yield Live(url, log)


@pytest.fixture(scope="module")
def live(settings: Settings, jwks: FakeJWKS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serving_with_jwks(settings, jwks, tmp_path_factory.mktemp("jwks")) as live:
        yield live


@pytest.fixture
def healthy(live: Live, jwks: FakeJWKS, database: Database) -> Live:
    """Each test starts with a healthy JWKS the app has read (an earlier outage has ended), and
    the interval since that fetch has passed (the next unknown kid may fetch again)."""
    jwks.mode, jwks.keys = "healthy", [KEY]
    deadline = time.monotonic() + INTERVAL + TIMEOUT + 5
    while (reason := me(live.url, forged("ins_probe")).json()["reason"]) != "unknown_key":
        assert time.monotonic() < deadline, f"the app did not read the healthy JWKS ({reason})"
        time.sleep(0.1)
    time.sleep(INTERVAL)
    return live


ATTACKER = SigningKey("ins_attacker")


def forged(kid: str) -> str:
    """A well-formed session token naming `kid`, signed by a key Clerk never published."""
    return ATTACKER.mint(headers={"kid": kid})


def me(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/api/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _api_key_latencies(url: str, headers: dict[str, str], seconds: float) -> tuple[list[float], Counter]:
    """One client, one request after another, for `seconds`: each request's latency."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            statuses[client.get("/api/users/me").status_code] += 1
            latencies.append(time.perf_counter() - started)
    return latencies, statuses


@dataclass
class Flood:
    process: subprocess.Popen[str]

    def pause(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGUSR2)

    def result(self) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, out
        return json.loads(out.splitlines()[-1])


@contextmanager
def flooding(url: str, concurrency: int, seconds: float, pause: float) -> Iterator[Flood]:
    """`tests.forged_flood` against the app, started once its tokens are minted."""
    port = httpx.URL(url).port
    command = [sys.executable, "-m", "tests.forged_flood", str(port), str(concurrency), str(seconds), str(pause)]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield Flood(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


FORGED_CLIENTS = 48  # 12 times the worker threads
FLOOD_PAUSE = 0.25  # each forged client waits this long after an answer (see the test)


ROUNDS, WINDOW = 8, 0.5  # windows with and without the flood, alternating; seconds each


def test_a_hanging_jwks_and_a_flood_of_forged_tokens_leave_api_keys_unaffected(
    jwks: FakeJWKS, settings: Settings, as_user: Any, tmp_path: Path
) -> None:
    """The reported attack: the JWKS accepts and never answers from the start; 48 clients send
    forged tokens naming made-up kids (the first ones all wait on the hanging fetch at once),
    pausing FLOOD_PAUSE after each answer: a flood of concurrency, as reported, not of CPU (an
    unpaced flood of any request saturates the event loop whatever it carries; limiting that is the
    proxy's job). One API-key client measures its latency in windows alternating with and without
    the flood, so the machine's other load weighs on both alike."""
    _, headers = as_user()
    jwks.mode = "hang"
    with serving_with_jwks(settings, jwks, tmp_path) as live:
        _api_key_latencies(live.url, headers, 0.5)  # first use (argon2), connections warmed
        started = time.monotonic()
        calm: list[float] = []
        flooded: list[float] = []
        statuses: Counter[int] = Counter()
        with flooding(live.url, FORGED_CLIENTS, seconds=2 * ROUNDS * WINDOW + 1, pause=FLOOD_PAUSE) as flood:
            for _ in range(ROUNDS):
                for samples, switch in ((flooded, flood.pause), (calm, flood.resume)):
                    latencies, window_statuses = _api_key_latencies(live.url, headers, WINDOW)
                    samples.extend(latencies)
                    statuses.update(window_statuses)
                    switch()
            forged = flood.result()
        elapsed = time.monotonic() - started
        fetches = jwks.fetches_since(started)
        log = live.log_since(0)

    report = {
        "backend": backend_name(settings),
        "calm p50/p99 ms": (_ms(statistics.median(calm)), _ms(_percentile(calm, 0.99)), len(calm)),
        "flood p50/p99 ms": (_ms(statistics.median(flooded)), _ms(_percentile(flooded, 0.99)), len(flooded)),
        "forged": forged,
        "fetches": (fetches, f"in {elapsed:.1f} s"),
    }
    print(f"\nhanging JWKS, {FORGED_CLIENTS} forged clients, {THREADS} threads: {report}")
    assert statuses == Counter({200: len(calm) + len(flooded)}), "an API-key request failed"
    assert _percentile(flooded, 0.99) <= 2 * _percentile(calm, 0.99), report
    # The only 5xx is the intended one: a 503 for the forged tokens, whose key cannot be had.
    assert set(forged["statuses"]) == {"503 key_unavailable"}, forged
    assert sum(forged["statuses"].values()) >= 4 * FORGED_CLIENTS  # a flood indeed
    assert forged["max_latency"] <= TIMEOUT + SLACK  # no request waited on the JWKS beyond the timeout
    assert 2 <= fetches <= elapsed / INTERVAL + 1
    assert log.count("Clerk JWKS unavailable") == 1, log
    assert "no complete answer within 1 s" in log
    assert "Traceback" not in log


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# How each broken JWKS is told in the outage's log line.
BROKEN = {
    "hang": "no complete answer within 1 s",
    "html": "the answer is not JSON",
    "empty": "no usable RS256 key among its 0 entries",
    "unusable": "no usable RS256 key among its 4 entries",
    "not_found": "HTTP 404",
    "oversized": f"the answer is larger than {MAX_JWKS_BYTES} bytes",
}


@pytest.mark.parametrize("mode", BROKEN)
def test_a_broken_jwks_is_a_503_problem_logged_once_and_recovers_within_an_interval(
    healthy: Live, jwks: FakeJWKS, mode: str
) -> None:
    """Clerk rotated its key (tokens name a kid the app has not cached) while its JWKS is broken."""
    rotated = SigningKey(f"ins_rotated_{mode}")
    jwks.mode = mode
    offset, started = healthy.log_size(), time.monotonic()

    burst = asyncio.run(_concurrently(healthy.url, [rotated.mint() for _ in range(40)]))
    burst_seconds = time.monotonic() - started
    assert jwks.fetches_since(started) <= 1 + burst_seconds // INTERVAL  # one shared fetch
    if mode == "hang":
        assert burst_seconds <= TIMEOUT + SLACK + 1  # they waited for the one fetch, not in a queue
    while time.monotonic() < started + 2.5 * INTERVAL:
        burst.append(me(healthy.url, rotated.mint()))
        assert me(healthy.url, KEY.mint()).status_code == 200  # a cached key still verifies
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    for response in burst:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["reason"] == "key_unavailable"
        assert 1 <= int(response.headers["retry-after"]) <= INTERVAL
    assert 1 <= jwks.fetches_since(started) <= elapsed / INTERVAL + 1

    jwks.keys, jwks.mode = [KEY, rotated], "healthy"
    switched = time.monotonic()
    while (response := me(healthy.url, rotated.mint())).status_code != 200:
        assert response.status_code == 503, response.text
        assert time.monotonic() - switched <= INTERVAL + SLACK, "not recovered within an interval"
        time.sleep(0.05)
    log = healthy.log_since(offset)
    assert log.count("Clerk JWKS unavailable") == 1, log
    assert BROKEN[mode] in log
    assert log.count("answers again") == 1, log
    assert "Traceback" not in log
    assert "unhandled" not in log


def test_a_flood_of_unknown_kids_against_a_healthy_jwks(healthy: Live, jwks: FakeJWKS) -> None:
    """Made-up kids cannot force a fetch per request: they are 401s, and valid tokens go on."""
    offset, started = healthy.log_size(), time.monotonic()
    valid: Counter[int] = Counter()
    with flooding(healthy.url, FORGED_CLIENTS, seconds=3, pause=0.05) as flood:
        while flood.process.poll() is None:
            valid[me(healthy.url, KEY.mint()).status_code] += 1
        forged = flood.result()
    elapsed = time.monotonic() - started
    fetches = jwks.fetches_since(started)
    print(f"\nunknown kids against a healthy JWKS: {forged}, {fetches} fetches in {elapsed:.1f} s")
    assert set(forged["statuses"]) == {"401 unknown_key"}, forged
    assert sum(forged["statuses"].values()) >= 10 * FORGED_CLIENTS
    assert 1 <= fetches <= elapsed / INTERVAL + 1
    assert set(valid) == {200}, valid
    log = healthy.log_since(offset)
    assert "Clerk JWKS" not in log, log
    assert "Traceback" not in log


async def _concurrently(url: str, tokens: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=len(tokens))) as client:
        return list(
            await asyncio.gather(
                *(client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"}) for token in tokens)
            )
        )


def test_waiters_share_one_fetch_and_none_waits_past_the_timeout(jwks: FakeJWKS) -> None:
    jwks.mode = "hang"
    cache = JWKSCache(jwks.url, timeout_seconds=0.5, min_refresh_seconds=60)

    async def wait(_: int) -> float:
        started = time.monotonic()
        await cache.fetched()
        return time.monotonic() - started

    async def scenario() -> tuple[list[float], float]:
        waits = await asyncio.gather(*(wait(number) for number in range(100)))
        return waits, await wait(0)  # the outage is known: no wait, no fetch

    before = len(jwks.fetches)
    waits, after_outage = asyncio.run(scenario())
    assert len(jwks.fetches) - before == 1
    assert max(waits) <= 0.5 + 0.2
    assert after_outage < 0.05
    assert not cache.complete
    assert cache.retry_after() == 60


def test_only_public_rs256_signing_keys_are_taken_from_a_jwks() -> None:
    private = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.private)), "kid": "ins_private"}
    entries = [
        private,  # a private key published by mistake
        {**KEY.jwk, "alg": "RS512"},
        {**KEY.jwk, "use": "enc"},
        {**KEY.jwk, "kid": 7},
        {key: value for key, value in KEY.jwk.items() if key != "kid"},
        "not an object",
    ]
    with pytest.raises(JWKSUnusable, match="no usable RS256 key among its 6 entries"):
        parse_jwks(json.dumps({"keys": entries}).encode())
    usable = parse_jwks(json.dumps({"keys": [*entries, KEY.jwk]}).encode())
    assert list(usable) == [KEY.kid]
    token = KEY.mint()
    assert jwt.decode(token, usable[KEY.kid], algorithms=["RS256"], options={"verify_aud": False})["sid"]
    for body in (b"[]", b'{"keys": {}}', b"\xff", b"[" * 100_000):
        with pytest.raises(JWKSUnusable):
            parse_jwks(body)
