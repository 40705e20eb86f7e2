"""Load from a separate process: wrk when it is installed, else `bench.client` (asyncio, keep-alive).

Either is pinned to its own core (`taskset` / `os.sched_setaffinity`) when the machine has two, so
the load generator does not steal the server's CPU.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRK = shutil.which("wrk")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int  # responses received
    ok: int  # of which 2xx
    seconds: float
    p50_ms: float
    p99_ms: float
    failure: str | None = None  # what went wrong, when not every response was a 2xx
    cpu_us: float | None = None  # the server process's CPU time per response (user + system)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def pinned(command: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if cpu is not None and shutil.which("taskset") else command


def raw_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", *(f"{name}: {value}" for name, value in headers.items())]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines) + "\r\n\r\n" + body.decode()


def load(port: int, path: str, headers: dict[str, str], seconds: int, connections: int, cpu: int | None) -> LoadResult:
    """The same GET, repeated on `connections` keep-alive connections for `seconds`."""
    if WRK:
        return run_wrk(f"http://127.0.0.1:{port}{path}", headers, seconds, connections, cpu)
    return run_client(port, [raw_request("GET", path, headers)], seconds, connections, cpu, cycle=True)


def run_wrk(url: str, headers: dict[str, str], seconds: int, connections: int, cpu: int | None) -> LoadResult:
    command = [WRK or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*pinned(command, cpu), url], check=True, capture_output=True, text=True).stdout
    return parse_wrk(output)


def _milliseconds(output: str, pattern: str) -> float:
    found = re.search(pattern, output, re.MULTILINE)
    if found is None:
        raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
    return float(found.group(1)) * UNIT_MS[found.group(2)]


def parse_wrk(output: str) -> LoadResult:
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    requests = int(total.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    bad = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors: (.*)", output)
    failure = f"{bad} of {requests} responses were not 2xx" if bad else None
    if errors:
        failure = f"{failure + '; ' if failure else ''}socket errors: {errors.group(1)}"
    return LoadResult(
        requests=requests,
        ok=requests - bad,
        seconds=float(total.group(2)) * UNIT_MS[total.group(3)] / 1000,
        p50_ms=_milliseconds(output, r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$"),
        p99_ms=_milliseconds(output, r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$"),
        failure=failure,
    )


def run_client(
    port: int, requests: list[str], seconds: float, connections: int, cpu: int | None, *, cycle: bool
) -> LoadResult:
    """`bench.client` in a subprocess: sends `requests` (round and round when `cycle`)."""
    spec = {
        "port": port,
        "connections": connections,
        "seconds": seconds,
        "cpu": cpu,
        "cycle": cycle,
        "requests": requests,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(spec, file)
        file.flush()
        command = [sys.executable, "-m", "bench.client", file.name]
        output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result = json.loads(output)
    bad = result["requests"] - result["ok"]
    failure = f"{bad} of {result['requests']} responses were not 2xx: {result['first_failure']}" if bad else None
    return LoadResult(result["requests"], result["ok"], result["seconds"], result["p50_ms"], result["p99_ms"], failure)
