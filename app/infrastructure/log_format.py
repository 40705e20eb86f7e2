"""Log formats: one JSON object per line outside development, readable lines in development.

A record carries only what the code logged: its message and, on the access log (`app.access`) and
the request's outage lines, the request's fields below. No formatter reads headers, cookies or bodies.
"""

import logging
import re
import sys
import threading
from collections import deque
from datetime import UTC, datetime

import msgspec

ACCESS_LOGGER = "app.access"
REQUEST_FIELDS = ("request_id", "method", "path", "status", "latency_ms", "user_id")
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
        # Not `_closed`: logging.Handler.close() sets that attribute to True.
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._write_periodically, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        # The message is rendered now (its arguments may change later); the same text either way.
        try:
            record.msg, record.args = record.getMessage(), None
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
        self._stopped.set()
        self.flush()
        super().close()

    def _write_periodically(self) -> None:
        while not self._stopped.wait(self.POLL_SECONDS):
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
    """`{"ts", "level", "logger", "msg"}` and whichever request fields the record has, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__
        entry.update((name, fields[name]) for name in REQUEST_FIELDS if name in fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(entry).decode()


class ReadableFormatter(logging.Formatter):
    """`2026-01-01 12:00:00,123 INFO app.access: GET /api/users/me 200 3.1 ms request_id=... user_id=...`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        fields = record.__dict__
        context = [
            f"{name}={fields[name]}"
            for name in ("request_id", "user_id")
            if fields.get(name) is not None and f"{name}=" not in record.message
        ]
        line = " ".join([line, *context])
        return _CONTROL_CHARACTERS.sub(_escaped, line) if record.name == ACCESS_LOGGER else line


# The access line's path is the client's, decoded (`%0a` is a newline): printed raw, it could forge
# a line of its own (the JSON format escapes it anyway). Other lines keep their newlines (tracebacks).
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
