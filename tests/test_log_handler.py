"""The background log handler's writer thread ends cleanly when the handler is closed.

`logging.Handler.close()` sets the handler's `_closed` attribute to True; the writer's stop event
once lived under that name, so a writer that looked at it after a close raised
`AttributeError: 'bool' object has no attribute 'wait'` in its thread (seen in every test run).
"""

import io
import logging
import threading
import time

import pytest

from app.infrastructure.log_format import BackgroundStreamHandler


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions raised in any thread during the test."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_the_writer_loop_ends_once_the_handler_is_closed(thread_errors: list[BaseException]) -> None:
    handler = BackgroundStreamHandler()
    handler.close()
    handler._writer.join(timeout=2)
    assert not handler._writer.is_alive()
    handler._write_periodically()  # what the writer runs: it returns at once after a close, never raises
    assert thread_errors == []


class SlowStream(io.StringIO):
    """stderr that takes a while to write, so a close lands while the writer is writing."""

    def write(self, text: str) -> int:
        time.sleep(0.002)
        return super().write(text)


def test_closing_handlers_while_they_write_raises_nothing_in_their_threads(
    thread_errors: list[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = SlowStream()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(BackgroundStreamHandler, "POLL_SECONDS", 0.001)
    handlers = []
    for index in range(40):
        handler = BackgroundStreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handlers.append(handler)
        for line in range(20):
            handler.handle(logging.LogRecord("app", logging.INFO, "", 0, "line %d.%d", (index, line), None))
        time.sleep(0.003)  # the writer is busy with its first write
        handler.close()
    for handler in handlers:
        handler._writer.join(timeout=2)
    assert thread_errors == []
    # Every record written, once. Only our records are compared: sys.stderr is the process's, and a
    # thread left by an earlier test (a server, an exporter) may write a line of its own meanwhile.
    written = [line for line in stream.getvalue().splitlines() if line.startswith("line ")]
    assert sorted(written) == sorted(f"line {index}.{line}" for index in range(40) for line in range(20))
