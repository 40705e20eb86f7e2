"""Request bodies through the app's ASGI handler: a client that leaves mid-body is a client error."""

import asyncio
import json

from litestar import Litestar

FAKE_KEY = "sk_0123456789abcdef_" + "A" * 43


def call(app: Litestar, messages: list[dict]) -> list[dict]:
    """The app called as uvicorn calls it, fed `messages`; what it sent back."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/users",
        "raw_path": b"/api/users",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
            (b"x-api-key", FAKE_KEY.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return sent


def test_a_client_gone_mid_body_is_a_400_not_a_server_error(app: Litestar) -> None:
    """Litestar calls it a 500, which an anonymous client could raise at will (and set off alerts)."""
    sent = call(app, [{"type": "http.request", "body": b"{" * 50, "more_body": True}, {"type": "http.disconnect"}])
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["detail"] == "the client closed the connection before sending the whole body"
