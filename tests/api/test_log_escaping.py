"""Client-supplied values cannot forge a log line, a field or a terminal escape, in either format.

Through HTTP a value reaches the logs by the path (percent-decoded: any character), by a header
value (bytes 0x80-0xff arrive as C1 controls) or by `X-Forwarded-For`, which uvicorn's proxy-headers
middleware makes the client address when it trusts the sender."""

import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.api.main import create_app, logging_config
from app.infrastructure.config import Settings
from app.infrastructure.database import Database
from app.infrastructure.log_format import BackgroundStreamHandler, JsonFormatter, ReadableFormatter, Verbatim
from tests.helpers import settings_for

# What an attacker would put in a value: a line of its own (CR/LF), a request id of its choosing, a
# colour and a cursor move (ANSI, also as the one-byte C1 CSI), a NUL, a Unicode line separator,
# a right-to-left override.
HOSTILE = "x\r\n2026-01-01 12:00:00,000 INFO app.access: forged request_id=forged \x1b[31mred\x9b2J\x00\u2028\u202e"
ESCAPED = (
    "x\\x0d\\x0a2026-01-01 12:00:00,000 INFO app.access: forged request_id=forged "
    "\\x1b[31mred\\x9b2J\\x00\\u2028\\u202e"
)
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
READABLE_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR|DEBUG) [\w.]+: ")


def record(msg: str, *args: object, name: str = "app.api.problems", **fields: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, "", 0, msg, args, None)
    made.__dict__.update(fields)
    return made


def test_the_readable_format_keeps_a_hostile_value_on_its_line_and_the_real_id_last() -> None:
    line = ReadableFormatter().format(record("refused from %s", HOSTILE, request_id="real-id"))
    assert "\n" not in line
    assert not UNSAFE.search(line), line
    assert line.endswith(" request_id=real-id")
    assert line.endswith(f": refused from {ESCAPED} request_id=real-id")


def test_the_json_format_escapes_the_message_and_keeps_the_fields_data() -> None:
    line = JsonFormatter().format(
        record("GET %s 404", HOSTILE, name="app.access", request_id="real-id", path=HOSTILE, status=404)
    )
    assert "\n" not in line
    assert not UNSAFE.search(line), line  # raw on a terminal: nothing moves or recolours it
    entry = json.loads(line)
    assert entry["request_id"] == "real-id"
    assert entry["path"] == HOSTILE  # a field is data: the exact value, JSON-escaped
    assert entry["msg"] == f"GET {ESCAPED} 404"  # `jq -r .msg` prints it inert too


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((7, 2.5, None), "7 2.5 None"),  # numbers and None are left alone
        ((ValueError("a\nb"), b"\x1b", ["\n"]), "a\\x0ab b'\\x1b' ['\\n']"),  # objects' text escaped too
    ],
)
def test_every_kind_of_argument_is_escaped(args: tuple, expected: str) -> None:
    assert ReadableFormatter().format(record("%s %s %s", *args)).endswith(f": {expected}")


def test_a_mapping_argument_is_escaped() -> None:
    assert ReadableFormatter().format(record("%(who)s", {"who": "a\nb"})).endswith(": a\\x0ab")


def test_verbatim_text_keeps_its_lines_and_only_its_lines() -> None:
    trace = Verbatim("\nTraceback (most recent call last):\n  File 'x'\nError: \x1b[31m")
    line = ReadableFormatter().format(record("failed on %s%s", "/p\n", trace, request_id="rid"))
    assert line.splitlines()[0].endswith("failed on /p\\x0a")
    assert line.splitlines()[1:] == [
        "Traceback (most recent call last):",
        "  File 'x'",
        "Error: \\x1b[31m request_id=rid",
    ]


def test_a_message_without_arguments_is_the_codes_own_text() -> None:
    """SQLAlchemy's echo logs each statement as the message itself, over several lines."""
    assert ReadableFormatter().format(record("SELECT 1\nFROM t")).endswith(": SELECT 1\nFROM t")


def test_a_traceback_keeps_its_lines_and_escapes_the_rest() -> None:
    try:
        raise ValueError("bad \x1b[2J value")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, "", 0, "boom", (), __import__("sys").exc_info())
    text = ReadableFormatter().format(failed)
    assert text.splitlines()[1] == "Traceback (most recent call last):"
    assert text.endswith("ValueError: bad \\x1b[2J value")


def test_the_handler_escapes_when_it_renders(capsys: pytest.CaptureFixture[str]) -> None:
    """`BackgroundStreamHandler` renders the message as it is logged (arguments may change later):
    it escapes then, so a formatter that finds no arguments left still prints a safe line."""
    handler = BackgroundStreamHandler()
    handler.setFormatter(ReadableFormatter())
    try:
        handler.handle(record("from %s", HOSTILE, request_id="real-id"))
        handler.flush()
    finally:
        handler.close()
    written = capsys.readouterr().err
    assert written.count("\n") == 1
    assert not UNSAFE.search(written.rstrip("\n"))
    assert written.rstrip("\n").endswith(" request_id=real-id")


# -- through the app ---------------------------------------------------------------------------


def _written(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The lines the app's handler wrote, but the test client's own (they quote the URL as sent)."""
    logging.getHandlerByName("queue_listener").flush()
    return [line for line in capsys.readouterr().err.splitlines() if not re.search(r'httpx\b|"httpx', line)]


@pytest.fixture(params=["development", "production"])
def app_and_format(request: pytest.FixtureRequest, settings: Settings, database: Database) -> Iterator[Litestar]:
    """The app as each environment logs, behind uvicorn's proxy-headers middleware trusting every
    sender (`--forwarded-allow-ips='*'`): `X-Forwarded-For` becomes the client address."""
    chosen = settings_for(settings.database_url).model_copy(update={"environment": request.param})
    yield create_app(chosen)
    logging_config(settings).configure()  # the tests that follow log as development does


def test_hostile_paths_and_forwarded_addresses_stay_on_their_line(
    app_and_format: Litestar, as_user: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_and_format
    development = app.state.container.settings.is_development
    forged_client = b"203.0.113.9 request_id=forged \x9b2J\x85x"  # bytes 0x80-0xff pass HTTP parsers
    path = "/api/users/me%0d%0a2026-01-01%2012:00:00,000%20INFO%20app.access:%20forged%1b[31m%00%e2%80%a8%e2%80%ae"
    with TestClient(ProxyHeadersMiddleware(app, trusted_hosts="*")) as client:
        _written(capsys)  # start-up lines
        refused = client.get("/api/users/me", headers={"X-Forwarded-For": forged_client, "X-API-Key": "sk_bad"})
        missing = client.get(path, headers={"X-Forwarded-For": forged_client})
        lines = _written(capsys)
    assert (refused.status_code, missing.status_code) == (401, 404)
    assert len(lines) == 3  # the refusal and two access lines: nothing else, no forged line
    for line in lines:
        assert not UNSAFE.search(line), line
    if development:
        assert all(READABLE_LINE.match(line) for line in lines), lines
        refusal = next(line for line in lines if "authentication refused" in line)
        real_id = refused.headers["x-request-id"]
        assert re.search(rf"from 203\.0\.113\.9 request_id=forged \S*\\x9b2J\S*\\x85x request_id={real_id}$", refusal)
        assert "GET /api/users/me\\x0d\\x0a2026-01-01 12:00:00,000 INFO app.access: forged\\x1b[31m\\x00" in lines[-1]
    else:
        entries = [json.loads(line) for line in lines]
        assert [entry["request_id"] for entry in entries] == [refused.headers["x-request-id"]] * 2 + [
            missing.headers["x-request-id"]
        ]
        assert (
            entries[-1]["path"]
            == "/api/users/me\r\n2026-01-01 12:00:00,000 INFO app.access: forged\x1b[31m\x00\u2028\u202e"
        )
        assert not any(UNSAFE.search(entry["msg"]) for entry in entries)
