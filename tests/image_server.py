"""The app under uvicorn started as the `api` image starts it (the Dockerfile's CMD), on a free port."""

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.infrastructure.config import PROJECT_ROOT
from tests.helpers import wait_until_healthy


def image_command() -> list[str]:
    """The api stage's CMD, parsed from the Dockerfile (so the tests run what the image runs)."""
    stage = (PROJECT_ROOT / "Dockerfile").read_text().split(" AS api\n", 1)[1].split("\nFROM ", 1)[0]
    cmd = re.search(r"^CMD (\[.*?\])$", stage.replace("\\\n", ""), flags=re.MULTILINE | re.DOTALL)
    assert cmd is not None, "the api stage has no exec-form CMD"
    return json.loads(cmd[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """Resident memory of the server process, MB (10^6 bytes)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)[1]) * 1024 / 1e6  # type: ignore[index]


@contextmanager
def serving_like_the_image(environment: dict[str, str], cwd: Path) -> Iterator[Server]:
    """uvicorn with the image's arguments, bound to 127.0.0.1 on a free port; stopped at the end."""
    command = image_command()
    assert command[0] == "uvicorn"
    port = free_port()
    arguments = command[1:]
    arguments[arguments.index("--host") + 1] = "127.0.0.1"
    arguments[arguments.index("--port") + 1] = str(port)
    env = {**os.environ, **environment}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", *arguments], env=env, cwd=cwd)
    try:
        wait_until_healthy(server, f"http://127.0.0.1:{port}")
        yield Server(port, server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
