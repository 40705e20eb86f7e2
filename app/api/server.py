"""uvicorn's httptools protocol with the request-header limits uvicorn lacks.

uvicorn (0.54) with httptools sets no deadline on a request's headers and no bound on their size or
number: headers trickled every 5 s held a connection for minutes (until the process ran out of file
descriptors), and a 16 MB header or 100 000 headers were read into memory. This protocol refuses:

- headers not complete REQUEST_HEADER_TIMEOUT_SECONDS (a setting) after the connection opened, or
  after the first byte of a next request on a kept-alive one: 408, connection closed;
- more than `MAX_HEADER_BYTES` (request line and headers) or `MAX_HEADER_FIELDS` fields: 431.

Bodies are the app's business (app/api/request_body.py). The image runs it:
`uvicorn --http app.api.server:BoundedHttpToolsProtocol ...` (Dockerfile).
"""

import asyncio
import json
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.infrastructure.config import get_settings

# A Clerk session cookie is 1-3 KB; browsers send 2-20 headers. nginx in front allows 4 x 16 KiB.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100


class HeadersRefusedError(Exception):
    """Raised from a parser callback to stop parsing; `send_400_response` then answers `status`."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # the bytes that arrive belong to a request's line and headers
        self._header_bytes = 0
        self._header_fields = 0
        self._header_deadline: asyncio.TimerHandle | None = None
        self._refusal = HTTPStatus.BAD_REQUEST
        self._header_timeout = get_settings().request_header_timeout_seconds  # cached: the app read them

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_clock()  # a connection that sends nothing is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        was_in_headers = self._in_headers
        super().data_received(data)
        # Counted only when the whole read was header bytes: a read that completes the headers may
        # carry body bytes, so the bound is MAX_HEADER_BYTES plus at most one read (<= 256 KiB).
        if was_in_headers and self._in_headers:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "the request headers are too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_clock()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_fields += 1
        if self._header_fields > MAX_HEADER_FIELDS:
            self._refusal = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            raise HeadersRefusedError
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_header_clock()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers, self._header_bytes, self._header_fields = True, 0, 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._in_headers:  # answered before its body ended: the rest would be read for nothing
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, a callback's `HeadersRefusedError` included."""
        if self._refusal == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
            self._refuse(self._refusal, f"more than {MAX_HEADER_FIELDS} header fields")
        else:
            self._refuse(HTTPStatus.BAD_REQUEST, msg)

    def _start_header_clock(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, f"the request headers took more than {self._header_timeout:g} s")

    def _refuse(self, status: HTTPStatus, detail: str) -> None:
        """A problem+json answer, then the connection is closed (what remains is never read)."""
        if self.transport.is_closing():
            return
        self._stop_header_clock()
        problem = {"type": "about:blank", "title": status.phrase, "status": int(status), "detail": detail}
        body = json.dumps(problem).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/problem+json\r\ncontent-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join([*head, body]))
        self.transport.close()
