"""Small helpers: ports, subprocesses, waiting for HTTP, statistics and formatting."""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """The harness could not measure something (a server or client misbehaved)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], *, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command capturing text output; a failure raises BenchError with what it said."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{cmd[0]} timed out after {timeout} s: {' '.join(cmd)}") from exc
    if check and result.returncode != 0:
        raise BenchError(
            f"{' '.join(cmd)} exited {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
            f"stderr:\n{result.stderr[-3000:]}"
        )
    return result


def http_status(port: int, path: str = "/v2/", timeout: float = 2.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def wait_http(port: int, *, path: str = "/v2/", statuses=(200, 401), timeout: float = 90, alive=None) -> None:
    """Wait until GET path answers one of ``statuses``; ``alive()`` False means give up early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status(port, path) in statuses:
            return
        if alive is not None and not alive():
            raise BenchError(f"the server for port {port} exited while starting")
        time.sleep(0.1)
    raise BenchError(f"nothing answered on 127.0.0.1:{port}{path} within {timeout} s")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a server we start: only the basics, then ``extra``.

    The caller's environment may carry a test run's settings (DJANGO_SETTINGS_MODULE,
    DATABASE_URL, FAST_PASSWORD_HASHER ...), which would not be the embedded default.
    """
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "USER", "LOGNAME", "TZ")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    result = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                result.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return result


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt_rate(value: float) -> str:
    """Bytes per second in decimal units, as the peers' README writes them."""
    if value != value:
        return "n/a"
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} B/s"


def fmt_number(value: float, unit: str) -> str:
    if value != value:
        return "n/a"
    if unit == "B/s":
        return fmt_rate(value)
    if unit == "req/s" or unit == "images/s":
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}".strip()


def mib(n: float) -> int:
    return int(n * 1024 * 1024)


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0-1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class HookListener:
    """A webhook endpoint on 127.0.0.1 that answers 204 and hands each POST to ``record``.

    Subclasses decide what a delivery means (signature checks, counting); this keeps the server:
    a thread per request, a deep accept queue for bursts of deliveries, no request log.
    """

    def __init__(self):
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.record(self.path, dict(self.headers.items()), body, arrived)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def record(self, path: str, headers: dict, body: bytes, arrived: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
