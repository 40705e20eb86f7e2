"""Without a proxy (`task dev`, a bare uvicorn), the server the `api` image runs protects itself.

The app under uvicorn with the image's own arguments (tests/image_server.py), attacked as an
anonymous client would: bodies over the bound are refused before they are read, bodies and headers
trickled past their deadlines are cut off, oversized headers are refused, and 200 unfinished webhook
bodies held at once cost the process a bounded amount of memory.
"""

import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.api.request_body import API_MAX_BODY_BYTES
from app.api.routes.webhooks import CLERK_WEBHOOK_MAX_BODY_BYTES
from app.api.server import MAX_HEADER_FIELDS
from tests.clerk_helpers import WEBHOOK_SECRET
from tests.image_server import Server, serving_like_the_image
from tests.raw_http import Answer, connect, read_answer, request_head, send_quietly, trickle_until_answer

HEADER_TIMEOUT = BODY_TIMEOUT = 3.0  # the settings' default is 10 s; shorter keeps the test short
SLACK = 2.0  # scheduling on a loaded 2-core machine
FAKE_KEY = "sk_0123456789abcdef_" + "A" * 43  # well-formed: the body is read before the key is checked
WEBHOOK = ("/webhooks/clerk", {"Content-Type": "application/json"})
API = ("/api/users", {"Content-Type": "application/json", "X-API-Key": FAKE_KEY})
RSS_LIMIT_MB = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("bare")
    environment = {
        "DATABASE_URL": f"sqlite:///{folder / 'app.db'}",  # never reached: every request is refused first
        "CLERK_WEBHOOK_SIGNING_SECRET": WEBHOOK_SECRET,
        "REQUEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "LOG_LEVEL": "WARNING",
    }
    with serving_like_the_image(environment, folder) as server:
        yield server


def post_head(route: tuple[str, dict[str, str]], **headers: str) -> bytes:
    path, base = route
    return request_head("POST", path, {**base, **headers})


@pytest.mark.parametrize(("route", "bound"), [(WEBHOOK, CLERK_WEBHOOK_MAX_BODY_BYTES), (API, API_MAX_BODY_BYTES)])
def test_a_body_announced_over_the_bound_is_refused_before_it_is_read(server: Server, route, bound: int) -> None:
    sock = connect(server.port)
    started = time.monotonic()
    assert send_quietly(sock, post_head(route, **{"Content-Length": str(10_000_000)}) + b"{" * 1024)
    answer = read_answer(sock, started, timeout=5)
    assert answer.status == 413
    assert answer.problem()["status"] == 413
    assert answer.headers["connection"] == "close"
    assert answer.closed  # the other 9.99 MB are never read
    assert bound < 10_000_000


def test_a_chunked_webhook_body_is_refused_once_past_the_bound(server: Server) -> None:
    """No Content-Length to judge: the server reads up to the bound, then refuses a body that never ends."""
    sock = connect(server.port)
    started = time.monotonic()
    assert send_quietly(sock, post_head(WEBHOOK, **{"Transfer-Encoding": "chunked"}))
    assert stream_until_answered(sock, b"%x\r\n%s\r\n" % (16384, b"x" * 16384), 16_000_000) < 16_000_000
    answer = read_answer(sock, started, timeout=5)
    assert (answer.status, answer.closed) == (413, True)


def stream_until_answered(sock: socket.socket, chunk: bytes, limit: int) -> int:
    """Send `chunk` again and again until the server answers or hangs up (or `limit` bytes); the count sent."""
    sent = 0
    while sent < limit and not select.select([sock], [], [], 0)[0] and send_quietly(sock, chunk):
        sent += len(chunk)
    return sent


@pytest.mark.parametrize("route", [WEBHOOK, API], ids=["webhook", "api"])
def test_a_trickled_body_is_cut_off_at_its_deadline(server: Server, route) -> None:
    sock = connect(server.port)
    started = time.monotonic()
    assert send_quietly(sock, post_head(route, **{"Content-Length": "400"}) + b" " * 200)
    answer = trickle_until_answer(sock, b" " * 199, every=0.5, started=started, timeout=BODY_TIMEOUT + SLACK + 5)
    assert answer.status == 408
    assert answer.problem()["detail"] == "the request body did not arrive in time"
    assert answer.closed
    assert BODY_TIMEOUT - 0.5 <= answer.seconds <= BODY_TIMEOUT + SLACK, answer.seconds


def test_trickled_headers_are_cut_off_at_their_deadline(server: Server) -> None:
    """Slowloris: one header byte every half second. The deadline counts from the connection."""
    sock = connect(server.port)
    started = time.monotonic()
    assert send_quietly(sock, b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
    answer = trickle_until_answer(sock, b"X-Slow: " + b"a" * 100, every=0.5, started=started, timeout=20)
    assert answer.status == 408
    assert answer.problem()["status"] == 408
    assert answer.closed
    assert HEADER_TIMEOUT - 0.5 <= answer.seconds <= HEADER_TIMEOUT + SLACK, answer.seconds


def test_a_silent_connection_is_closed_at_the_header_deadline(server: Server) -> None:
    sock = connect(server.port)
    answer = read_answer(sock, time.monotonic(), timeout=HEADER_TIMEOUT + SLACK)
    assert answer.status == 408
    assert answer.closed


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(server: Server) -> None:
    sock = connect(server.port)
    assert send_quietly(sock, request_head("GET", "/health"))
    first = read_answer(sock, time.monotonic(), timeout=5)
    assert (first.status, first.closed) == (200, False)  # kept alive (read_answer waited 2 s: under 5 s)
    started = time.monotonic()
    answer = trickle_until_answer(
        sock, b"GET /health HTTP/1.1\r\n" + b"X" * 100, every=0.5, started=started, timeout=20
    )
    assert answer.status == 408
    assert answer.seconds <= HEADER_TIMEOUT + SLACK


def test_huge_headers_are_refused_once_past_the_bound_without_buffering_them(server: Server) -> None:
    """30 clients each streaming a 32 MB header (which once took RSS from 119 to 361 MB): each is
    refused after about MAX_HEADER_BYTES, before its header ends, and memory stays flat."""
    answers: list[Answer] = []

    def attack() -> None:
        sock = connect(server.port)
        started = time.monotonic()
        assert send_quietly(sock, b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
        assert stream_until_answered(sock, b"a" * 65536, 32_000_000) < 32_000_000
        answers.append(read_answer(sock, started, timeout=10))

    before = server.rss_mb()
    with PeakMemory(server) as memory:
        attackers = [threading.Thread(target=attack) for _ in range(30)]
        for attacker in attackers:
            attacker.start()
        for attacker in attackers:
            attacker.join()
    print(f"\n30 streamed 32 MB headers: RSS {before:.0f} MB before, peak {memory.peak:.0f} MB")
    assert [(answer.status, answer.closed) for answer in answers] == [(431, True)] * 30
    assert answers[0].problem()["detail"] == "the request headers are too large"
    assert memory.peak - before < 50


def test_a_hundred_thousand_headers_are_refused(server: Server) -> None:
    sock = connect(server.port)
    started = time.monotonic()
    head = b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(100_000))
    send_quietly(sock, head + b"\r\n")
    answer = read_answer(sock, started, timeout=5)
    assert answer.status == 431
    assert answer.problem()["detail"] == f"more than {MAX_HEADER_FIELDS} header fields"
    assert answer.closed


def test_a_request_within_the_bounds_is_served(server: Server) -> None:
    cookie = "__session=" + "a" * 4000
    response = httpx.get(f"{server.url}/health", headers={"Cookie": cookie, **{f"X-{n}": "v" for n in range(40)}})
    assert response.status_code == 200


class PeakMemory:
    """Samples the server's RSS every 20 ms in a thread."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak, self._stop = server, server.rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.server.rss_mb())

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize(
    ("route", "size"), [(WEBHOOK, CLERK_WEBHOOK_MAX_BODY_BYTES), (API, API_MAX_BODY_BYTES)], ids=["webhook", "api"]
)
def test_200_unfinished_bodies_keep_memory_bounded_and_are_all_cut_off(server: Server, route, size: int) -> None:
    """Each sends all but the last byte of the largest body the route accepts, then waits (the API
    route with a well-formed fake key: bodies are read before credentials are checked)."""
    connections = 200
    before = server.rss_mb()
    with PeakMemory(server) as memory:
        started = time.monotonic()
        sockets = [connect(server.port) for _ in range(connections)]
        for sock in sockets:
            assert send_quietly(sock, post_head(route, **{"Content-Length": str(size)}) + b" " * (size - 1))
        sent = time.monotonic() - started
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200  # others are still served
        answers = [read_answer(sock, started, timeout=BODY_TIMEOUT + SLACK + sent) for sock in sockets]
    statuses = Counter(answer.status for answer in answers)
    slowest = max(answer.seconds for answer in answers)
    print(
        f"\n{connections} unfinished {size // 1024} KiB bodies to {route[0]}: RSS {before:.0f} MB before, "
        f"peak {memory.peak:.0f} MB; all sent in {sent:.2f} s; {dict(statuses)}, the last after {slowest:.1f} s"
    )
    assert statuses == Counter({408: connections})
    assert all(answer.closed for answer in answers)
    assert slowest <= sent + BODY_TIMEOUT + SLACK
    assert memory.peak < RSS_LIMIT_MB
