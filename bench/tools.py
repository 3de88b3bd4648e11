"""The load tools: wrk for request rates and latency percentiles, curl for transfers."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.util import BenchError, run

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise BenchError(f"cannot read a wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors
    error_text: str
    command: str


def parse_wrk(out: str, command: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        raise BenchError(f"unexpected wrk output:\n{out}")
    errors, notes = 0, []
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
        notes.append(f"{non2xx.group(1)} non-2xx/3xx")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        counts = [int(x) for x in sock.groups()]
        errors += sum(counts)
        notes.append("socket errors connect {}, read {}, write {}, timeout {}".format(*counts))
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        errors=errors,
        error_text="; ".join(notes),
        command=command,
    )


def wrk(
    url: str,
    *,
    seconds: float,
    threads: int = 2,
    connections: int = 32,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    timeout_s: int = 10,
) -> WrkResult:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    cmd += [f"--timeout={timeout_s}s"]
    shown = list(cmd)
    for name, value in (headers or {}).items():
        if not value:
            continue
        cmd += ["-H", f"{name}: {value}"]
        # Tokens and passwords stay out of the report.
        shown += ["-H", f"'{name}: <...>'" if name == "Authorization" else f"'{name}: {value}'"]
    if script is not None:
        cmd += ["-s", str(script)]
        shown += ["-s", script.name]
    cmd.append(url)
    shown.append(url)
    out = run(cmd, timeout=seconds + timeout_s + 60).stdout
    return parse_wrk(out, " ".join(shown))


RANGE_SCRIPT = """
-- Random {slice}-byte Range slices of a {size}-byte blob.
local slices = {count}
local auth = "{auth}"
request = function()
  local s = math.random(0, slices - 1) * {slice}
  local h = {{["Range"] = string.format("bytes=%d-%d", s, s + {slice} - 1)}}
  if auth ~= "" then h["Authorization"] = auth end
  return wrk.format("GET", "{path}", h)
end
"""


def range_script(path: Path, *, url_path: str, size: int, slice_size: int, auth: str) -> Path:
    path.write_text(
        RANGE_SCRIPT.format(slice=slice_size, size=size, count=size // slice_size, auth=auth, path=url_path)
    )
    return path


@dataclass
class CurlResult:
    status: int
    seconds: float
    bytes: int
    speed: float  # bytes/s as curl reports it
    redirect_url: str


_CURL_FORMAT = "%{http_code} %{time_total} %{size_download} %{speed_download} %{size_upload} %{redirect_url}"


def _curl_cmd(url: str, headers: dict[str, str] | None, extra: list[str]) -> list[str]:
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", _CURL_FORMAT, "--max-time", "1800", *extra]
    for name, value in (headers or {}).items():
        if value:
            cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    return cmd


def _parse_curl(out: str, upload: bool = False) -> CurlResult:
    parts = out.strip().split(" ", 5)
    status, seconds, size_down, speed_down, size_up = parts[:5]
    redirect = parts[5] if len(parts) > 5 else ""
    size = int(float(size_up if upload else size_down))
    seconds = float(seconds)
    speed = size / seconds if upload and seconds > 0 else float(speed_down)
    return CurlResult(int(status), seconds, size, speed, redirect)


def curl_get(url: str, headers: dict[str, str] | None = None) -> CurlResult:
    return _parse_curl(run(_curl_cmd(url, headers, []), timeout=1900).stdout)


def curl_put_file(url: str, path: Path, headers: dict[str, str] | None = None) -> CurlResult:
    # `Expect:` off: curl would otherwise wait for a 100 Continue that not every server sends.
    extra = ["-X", "PUT", "-T", str(path), "-H", "Expect:", "-H", "Content-Type: application/octet-stream"]
    return _parse_curl(run(_curl_cmd(url, headers, extra), timeout=1900).stdout, upload=True)


def curl_parallel_get(urls: list[str], headers: dict[str, str] | None = None) -> tuple[float, list[CurlResult]]:
    """GET every URL at once, one curl each; the wall time from first start to last end."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(_curl_cmd(url, headers, []), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for url in urls
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=1900)
        if proc.returncode != 0:
            raise BenchError(f"curl exited {proc.returncode}: {err}")
        results.append(_parse_curl(out))
    return time.perf_counter() - t0, results
