"""Log formats: one JSON object per line outside development, readable lines in development.

A record carries only what the code logged: its message, the ids of the request, job or flow run it
was logged in (`log_context`), and on the access log (`app.access`) the request's fields below. No
formatter reads headers, cookies or bodies.

Values logged are escaped, in every format, by one rule (`safe_message`): a log call's arguments
(paths, client addresses, header values, ids and e-mails from a request or a webhook) are where
client-supplied text enters a record, so once the message is rendered every control character in
it becomes `\\x0a`-style text, along with the Unicode line separators and bidi overrides (a message
logged without arguments is the code's own text and keeps its lines; so do `Verbatim` arguments, a
traceback the code composed). No value can then forge a line, a field or a terminal escape; ruff's
G rules keep values out of templates.
"""

import logging
import re
import sys
import threading
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.infrastructure.log_context import CONTEXT_FIELDS

ACCESS_LOGGER = "app.access"
REQUEST_FIELDS = ("method", "path", "status", "latency_ms", "user_id")
RECORD_FIELDS = (*CONTEXT_FIELDS, *REQUEST_FIELDS)  # what a JSON line adds to its message, when present
_encoder = msgspec.json.Encoder(enc_hook=str)  # a library's `extra` may hold anything (a Path, ...)


class BackgroundStreamHandler(logging.Handler):
    """Writes records to stderr from a thread of its own, in one write every POLL_SECONDS.

    Logging a record only renders its message and appends it to a deque, in the thread that logs:
    no lock is handed over, no thread is woken, no system call is made. A `QueueHandler` wakes its
    listener on every record, and the listener writes each line with a system call of its own; on
    a server each of those hands the GIL between threads, which cost 60-200 µs of CPU per request
    under load (measured), against about 10 µs for this handler.
    """

    POLL_SECONDS = 0.05

    def __init__(self) -> None:
        super().__init__()
        self._records: deque[logging.LogRecord] = deque()
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()  # not `_closed`: logging.Handler.close() sets that one to True
        self._writer = threading.Thread(target=self._write_periodically, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        # The message is rendered now (its arguments may change later), its values escaped.
        try:
            record.msg, record.args = safe_message(record), None
        except Exception:  # logging's rule: a bad log call is reported, never raised into the caller
            self.handleError(record)
            return
        self._records.append(record)

    def flush(self) -> None:
        """Write what is queued, now (at shutdown: uvicorn re-raises SIGTERM, so `atexit` never runs)."""
        with self._write_lock:
            lines = []
            while self._records:
                record = self._records.popleft()
                try:
                    lines.append(self.format(record))
                except Exception:  # logging's rule: a bad record never breaks the program
                    self.handleError(record)
            if lines:
                stream = sys.stderr  # looked up each time, as `logging.lastResort` does
                stream.write("\n".join(lines) + "\n")
                stream.flush()

    def close(self) -> None:
        self._stopping.set()
        self.flush()
        super().close()

    def _write_periodically(self) -> None:
        while not self._stopping.wait(self.POLL_SECONDS):
            self.flush()


def lean_log_records() -> None:
    """Stop filling in what no format here shows, per record: the caller's file and line (a walk up
    the stack), the thread, process and asyncio task names, the process id. The switches are
    logging's documented optimisations; a format that shows those fields needs them back on."""
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12+, not in typeshed yet


def flush_logs() -> None:
    """Write every record the root logger's handlers hold (the app calls it when it shuts down)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg"}` and whichever context and request fields the record has,
    on one line."""

    _second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text

    def _timestamp(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond; the date and time to the second are formatted once
        per second (isoformat was a third of a line's cost)."""
        whole = int(created)
        second, text = self._second
        if whole != second:
            text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (whole, text)
        return f"{text}.{int((created - whole) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": safe_message(record),
        }
        fields = record.__dict__
        entry.update((name, fields[name]) for name in RECORD_FIELDS if name in fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = _encoder.encode(entry).decode()  # escapes C0 controls; the request fields are raw data
        if line.isascii() and "\x7f" not in line:
            return line
        return _UNSAFE.sub(_json_escaped, line)  # DEL, C1, separators, bidi: the same value, inert on a terminal


_READABLE_FIELDS = (*CONTEXT_FIELDS, "user_id")


class ReadableFormatter(logging.Formatter):
    """`2026-01-01 12:00:00,123 INFO app.access: GET /api/users/me 200 3.1 ms request_id=... user_id=...`
    (and `job_id=...`, `flow_run_id=...` on a job's or a flow run's lines)

    The request's fields always come last, after a message that holds no line break of a value: a
    value that reads `request_id=...` cannot hide the real one. Tracebacks keep their lines.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = safe_message(record)
        fields = record.__dict__
        context = [f"{name}={fields[name]}" for name in _READABLE_FIELDS if fields.get(name) is not None]
        return " ".join([super().formatMessage(record), *context])

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        """A traceback keeps its lines; any other control character in it (an exception's message
        may quote a value) is escaped."""
        return _CONTROL_BUT_NEWLINE.sub(_escaped, super().formatException(ei))


class Verbatim(str):
    """An argument whose line breaks are kept (its other control characters are still escaped):
    text the code composed over several lines, such as a redacted traceback; never a value."""

    __slots__ = ()


def safe_message(record: logging.LogRecord) -> str:
    """The record's message with every control character that its arguments brought escaped: the
    whole rendered message is, but for the line breaks of `Verbatim` arguments. A message already
    rendered by `BackgroundStreamHandler` (no arguments left) was escaped then."""
    message = record.getMessage()
    args = record.args
    if not args or message.isprintable():
        return message
    values = args.values() if isinstance(args, Mapping) else args
    kept = [value for value in values if isinstance(value, Verbatim) and value]
    if not kept:
        return _UNSAFE.sub(_escaped, message)
    parts = []
    for text in kept:
        before, found, message = message.partition(text)
        parts.append(_UNSAFE.sub(_escaped, before) + _CONTROL_BUT_NEWLINE.sub(_escaped, found))
    return "".join(parts) + _UNSAFE.sub(_escaped, message)


# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the bidi marks, embeddings,
# overrides and isolates (which reorder what a terminal shows).
_UNSAFE_CHARACTERS = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_UNSAFE_CHARACTERS}]")
_CONTROL_BUT_NEWLINE = re.compile(rf"(?!\n)[{_UNSAFE_CHARACTERS}]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"
