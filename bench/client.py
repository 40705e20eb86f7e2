"""The bench's own load generator, for when wrk is absent (and for the webhook deliveries).

`python -m bench.client SPEC.json` prints one JSON result line. SPEC holds the port, the number of
keep-alive connections, the duration, the CPU to pin to, and the raw HTTP/1.1 requests to send: with
`cycle` they are sent round and round, without it each is sent once and the run ends early when they
run out. At the deadline every connection finishes the request it has in flight, so each request sent
has its response counted (nothing is cut off, unlike wrk).
"""

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    first_failure: str | None = None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return status, await reader.readexactly(int(line.split(b":", 1)[1]))
    raise RuntimeError(f"response without Content-Length: {head[:200]!r}")


async def connection(port: int, next_request: Callable[[], bytes | None], deadline: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and (request := next_request()) is not None:
            started = time.perf_counter()
            writer.write(request)
            status, body = await read_response(reader)
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if status >= 300 and tally.first_failure is None:
                tally.first_failure = f"{status} {body[:500].decode(errors='replace')}"
    finally:
        writer.close()


async def run(spec: dict) -> dict:
    requests = [request.encode() for request in spec["requests"]]
    positions = count()

    def next_request() -> bytes | None:
        position = next(positions)
        if spec["cycle"]:
            return requests[position % len(requests)]
        return requests[position] if position < len(requests) else None

    tally = Tally()
    started = time.perf_counter()
    deadline = started + spec["seconds"]
    await asyncio.gather(*(connection(spec["port"], next_request, deadline, tally) for _ in range(spec["connections"])))
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies) or [0.0]
    return {
        "requests": len(tally.latencies),
        "ok": sum(number for status, number in tally.statuses.items() if status < 300),
        "statuses": tally.statuses,
        "seconds": elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "first_failure": tally.first_failure,
    }


def main() -> None:
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
