"""HTTP/1.1 by hand over a socket: what a hostile client sends (trickled, oversized, unfinished), and
what comes back, and when the server hung up."""

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    status: int | None  # None: the server closed the connection without answering
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False  # the server closed the connection after answering
    seconds: float = 0.0  # from `started` to the end of the answer or the close

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        return json.loads(self.body)


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection((host, port), timeout=10)


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """False once the server has hung up."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def read_answer(sock: socket.socket, started: float, timeout: float) -> Answer:
    """Read one response (or the close) within `timeout` seconds of now; `seconds` counts from `started`."""
    sock.settimeout(timeout)
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                return Answer(None, closed=True, seconds=time.monotonic() - started)
            received += chunk
    except ConnectionResetError:
        return Answer(None, closed=True, seconds=time.monotonic() - started)
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    seconds = time.monotonic() - started
    return Answer(int(status_line.split()[1]), headers, body, closed=_closed(sock), seconds=seconds)


def _closed(sock: socket.socket, wait: float = 2.0) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def trickle_until_answer(sock: socket.socket, data: bytes, every: float, started: float, timeout: float) -> Answer:
    """Send `data` one byte every `every` seconds until the server answers or hangs up."""
    deadline = time.monotonic() + timeout
    for byte in data:
        if not send_quietly(sock, bytes([byte])):
            break
        sock.settimeout(every)
        try:
            peeked = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            assert time.monotonic() < deadline, f"no answer within {timeout} s"
            continue
        except ConnectionResetError:
            break
        if peeked == b"":
            break
        break  # an answer is waiting
    return read_answer(sock, started, max(0.1, deadline - time.monotonic()))
