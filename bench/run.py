"""`task bench`: requests/s of GET /api/users/me through the real app, against a bare handler.

Each server runs alone, one uvicorn process on a fresh database (SQLite, or BENCH_DATABASE_URL),
loaded by an asyncio keep-alive client in this process. Compare the ratios of one run: absolute
numbers move with the machine's load.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.clerk_helpers import ALLOWED_ORIGIN, ISSUER, SigningKey

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def load(port: int, headers: dict[str, str], seconds: float) -> tuple[int, int]:
    """Keep-alive GETs on CONNECTIONS connections for `seconds`: (ok responses, other responses)."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = f"GET /api/users/me HTTP/1.1\r\nHost: bench\r\n{lines}\r\n".encode()
    deadline = time.perf_counter() + seconds
    counts = [0, 0]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            counts[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
        writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return counts[0], counts[1]


def serve(target: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        *target,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, env=env, cwd=ROOT)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"{target} did not start")


def measure(name: str, target: list[str], env: dict[str, str], headers: dict[str, str]) -> float:
    server, port = serve(target, env)
    try:
        asyncio.run(load(port, headers, 1.0))  # warm-up: first-use argon2, connection pool, caches
        ok, other = asyncio.run(load(port, headers, SECONDS))
    finally:
        server.terminate()
        server.wait(timeout=10)
    if other:
        raise SystemExit(f"{name}: {other} responses were not 200")
    rate = ok / SECONDS
    print(f"{name:<40} {rate:8.0f} req/s")
    return rate


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{scratch}/bench.db"
        signing_key = SigningKey("ins_bench")  # the tests' real RS256 session tokens
        clerk_id = f"user_bench_{time.time_ns()}"  # fresh on every run, also on a reused database
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "CLERK_ISSUER": ISSUER,
            "CLERK_JWT_KEY": signing_key.public_pem,
            "CLERK_AUTHORIZED_PARTIES": ALLOWED_ORIGIN,
        }
        subprocess.run(["alembic", "upgrade", "head"], env=env, cwd=ROOT, check=True, capture_output=True)
        created = subprocess.run(
            ["generate-user", "--email", f"{clerk_id}@example.com", "--clerk-id", clerk_id, "--json"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        api_key = json.loads(created.stdout.strip().splitlines()[-1])["api_key"]
        token = signing_key.mint(sub=clerk_id, exp=int(time.time()) + 3600)

        print(f"GET /api/users/me, {CONNECTIONS} connections, {SECONDS:.0f} s each, {database_url.split(':')[0]}")
        bare = measure("bare handler (1 hop, 1 query)", ["bench.bare_app:app"], env, {"X-API-Key": api_key})
        factory = ["--factory", "app.api.main:create_app"]
        with_key = measure("app, X-API-Key", factory, env, {"X-API-Key": api_key})
        with_token = measure("app, Clerk session token", factory, env, {"Authorization": f"Bearer {token}"})
        print(f"app/bare: X-API-Key {with_key / bare:.0%}, Clerk session {with_token / bare:.0%}")


if __name__ == "__main__":
    main()
