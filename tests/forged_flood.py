"""A flood of forged Clerk session tokens, run as its own process by the JWKS tests:

    python -m tests.forged_flood PORT CONCURRENCY SECONDS PAUSE

`CONCURRENCY` clients on raw keep-alive connections (an HTTP client library would spend more CPU
than the server's answers cost) each send `GET /api/users/me` with a token signed by the attacker's
key and naming a made-up kid (all different), wait for the answer, pause `PAUSE` seconds, and go on
until `SECONDS` have passed; SIGUSR1 pauses them (after the answers they wait for), SIGUSR2 resumes.
Prints `ready` once its tokens are minted, then a JSON summary:
`{"statuses": {"<status> <reason>": count}, "max_latency": seconds}`.
"""

import asyncio
import json
import secrets
import signal
import sys
import time
from collections import Counter

from tests.clerk_helpers import SigningKey


async def flood(port: int, concurrency: int, seconds: float, pause: float) -> dict[str, object]:
    attacker = SigningKey("ins_attacker")
    tokens = [attacker.mint(headers={"kid": f"ins_{secrets.token_hex(8)}"}) for _ in range(400)]
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    running = asyncio.Event()
    running.set()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, running.clear)
    loop.add_signal_handler(signal.SIGUSR2, running.set)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds

    async def attack(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            await running.wait()
            token = tokens[number % len(tokens)]
            number += concurrency
            started = time.monotonic()
            writer.write(f"GET /api/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:"))
            body = json.loads(await reader.readexactly(length))
            latencies.append(time.monotonic() - started)
            statuses[f"{int(lines[0].split()[1])} {body.get('reason')}"] += 1
            await asyncio.sleep(pause)
        writer.close()

    await asyncio.gather(*(attack(number) for number in range(concurrency)))
    return {"statuses": statuses, "max_latency": max(latencies)}


if __name__ == "__main__":
    port, concurrency, seconds, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(flood(port, concurrency, seconds, pause))), flush=True)
