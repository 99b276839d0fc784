"""HTTP load for the benchmark from ``wrk`` (a C load generator, Debian's package ``wrk``): a
Python client adds milliseconds per request on these machines, more than the routes cost.

``run_wrk`` runs one measurement and reads wrk's own summary: requests per second, the 50th
and 99th latency percentiles, and the answers that were not 2xx/3xx (counted, never ignored).
Requests other than a plain GET (a POST with a body that varies per request) come from a Lua
script made by ``body_script``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class Load:
    rps: float
    p50: float  # ms
    p99: float  # ms
    requests: int
    failed: int  # answers that were not 2xx/3xx, plus socket errors

    def as_dict(self) -> dict[str, float]:
        return {
            "rps": self.rps,
            "p50": self.p50,
            "p99": self.p99,
            "requests": self.requests,
            "failed": self.failed,
        }


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(
            "the benchmark measures HTTP with wrk: install Debian's package "
            "(apt-get install -y wrk); `make bench` does"
        )
    return found


def parse(output: str) -> Load:
    percentiles = {q: float(v) * _UNITS_MS[u] for q, v, u in _LATENCY.findall(output)}
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    if rps is None or total is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"unexpected wrk output:\n{output}")
    failed = sum(int(n) for n in _NON_2XX.findall(output))
    socket = _SOCKET_ERRORS.search(output)
    if socket:
        failed += sum(int(n) for n in socket.groups())
    return Load(
        rps=float(rps.group(1)),
        p50=percentiles["50"],
        p99=percentiles["99"],
        requests=int(total.group(1)),
        failed=failed,
    )


def run_wrk(
    url: str,
    *,
    token: str,
    clients: int,
    seconds: float,
    script: Path | None = None,
) -> Load:
    """``clients`` connections on up to two threads for ``seconds``."""
    cmd = [
        wrk_path(),
        f"-t{min(clients, 2)}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
        "-H",
        f"Authorization: Bearer {token}",
    ]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    done = subprocess.run(cmd, check=True, text=True, capture_output=True)
    return parse(done.stdout)


def body_script(method: str, path: str, body_format: str, numbers: list[int]) -> Path:
    """A wrk script sending ``method path`` with ``body_format % number`` as its JSON body,
    ``number`` drawn at random (per thread) from ``numbers``."""
    lua_numbers = ", ".join(str(n) for n in numbers)
    text = f"""
local numbers = {{{lua_numbers}}}
local body_format = [[{body_format}]]
local counter = 0
wrk.headers["Content-Type"] = "application/json"
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  counter = counter + 1
  local n = numbers[math.random(#numbers)]
  local body = string.format(body_format, n, counter)
  return wrk.format("{method}", string.format("{path}", n), nil, body)
end
"""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".lua", delete=False, prefix="crm-bench-"
    ) as handle:
        handle.write(text)
    return Path(handle.name)
