"""The servers a run measures: the project (embedded default, and behind nginx), the peers, moto.

Every server runs on 127.0.0.1 in its own session (process group), so a Ctrl-C in the terminal
reaches the harness only and the harness stops each server in order; ``stop()`` is safe to call
twice and on a server that never started.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.util import REPO_ROOT, BenchError, child_env, children_of, cmdline, free_port, run, wait_http

NGINX = "/usr/sbin/nginx"


def _stop_group(proc: subprocess.Popen | None, *, grace: float = 25.0) -> None:
    """SIGTERM the process group we created for ``proc``, then SIGKILL what is left."""
    if proc is None:
        return
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        proc.poll()
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _spawn(cmd: list[str], *, env: dict, log_path: Path, cwd: Path = REPO_ROOT) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            # A zombie is dead: nobody reaps what the peers' scripts left to init.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class _Process:
    """A server we started as a child process; ``alive`` is None until it has started."""

    proc: subprocess.Popen | None = None
    log_path: Path

    def alive(self) -> bool | None:
        return None if self.proc is None else self.proc.poll() is None

    def log_tail(self) -> str:
        return _tail(self.log_path, 15)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class ProjectServer(_Process):
    """``manage.py migrate`` then ``manage.py serve`` (gunicorn + Celery worker), as README runs it."""

    def __init__(
        self,
        *,
        name: str,
        data_dir: Path,
        port: int,
        username: str,
        password: str,
        log_dir: Path,
        extra_env: dict | None = None,
        worker: bool = True,
    ):
        self.name = name
        self.data_dir = data_dir
        self.port = port
        self.username = username
        self.password = password
        self.log_path = log_dir / f"{name}.log"
        self.worker = worker
        self.env = child_env(
            {
                "DATA_DIR": str(data_dir),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "WS_PORT": str(free_port()),
                "DJANGO_SUPERUSER_USERNAME": username,
                "DJANGO_SUPERUSER_PASSWORD": password,
                **(extra_env or {}),
            }
        )
        self.proc: subprocess.Popen | None = None

    def manage(self, *args: str, timeout: float = 300) -> str:
        return run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=self.env, timeout=timeout).stdout

    def shell(self, code: str, timeout: float = 300) -> dict:
        """Run Python in ``manage.py shell`` against this server's data; it prints one JSON line."""
        out = self.manage("shell", "-c", code, timeout=timeout)
        for line in reversed(out.splitlines()):
            if line.startswith("BENCH "):
                return json.loads(line[len("BENCH ") :])
        raise BenchError(f"manage.py shell printed no result:\n{out[-2000:]}")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        cmd = [sys.executable, "manage.py", "serve"] + ([] if self.worker else ["--no-worker"])
        self.proc = _spawn(cmd, env=self.env, log_path=self.log_path)
        try:
            wait_http(self.port, alive=lambda: self.proc.poll() is None)
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- {self.log_path}:\n{_tail(self.log_path)}") from None

    def gunicorn_workers(self) -> list[int]:
        """PIDs of the gunicorn worker processes (children of the gunicorn master)."""
        if self.proc is None:
            return []
        for child in children_of(self.proc.pid):
            if "gunicorn" in cmdline(child):
                return children_of(child)
        return []

    def stop(self) -> None:
        _stop_group(self.proc)
        self.proc = None


class GunicornWeb(_Process):
    """A second web process on an existing DATA_DIR (the one nginx proxies to for X-Accel)."""

    def __init__(self, *, name: str, port: int, env: dict, log_dir: Path):
        self.name = name
        self.port = port
        self.env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "quay_site.wsgi:application",
            "-c",
            str(REPO_ROOT / "quay_site" / "gunicorn_conf.py"),
        ]
        self.proc = _spawn(cmd, env=self.env, log_path=self.log_path)
        try:
            wait_http(self.port, alive=lambda: self.proc.poll() is None)
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- {self.log_path}:\n{_tail(self.log_path)}") from None

    def stop(self) -> None:
        _stop_group(self.proc)
        self.proc = None


def render_nginx_conf(template: str, *, listen: str, upstream: str, storage_root: Path, runtime_dir: Path) -> str:
    values = {
        "{{USER}}": pwd.getpwuid(os.getuid()).pw_name,
        "{{LISTEN}}": listen,
        "{{UPSTREAM}}": upstream,
        "{{STORAGE_ROOT}}": str(storage_root).rstrip("/"),
        "{{RUNTIME_DIR}}": str(runtime_dir),
    }
    for key, value in values.items():
        template = template.replace(key, value)
    if "{{" in template:
        raise BenchError("deploy/nginx.conf has a placeholder the harness does not fill")
    return template


class NginxXAccel(_Process):
    """nginx with ``deploy/nginx.conf`` in front of a web process that answers X-Accel-Redirect."""

    def __init__(self, *, port: int, upstream_port: int, storage_root: Path, runtime_dir: Path, template: Path):
        self.port = port
        self.runtime_dir = runtime_dir
        self.conf_path = runtime_dir / "nginx.conf"
        self.log_path = runtime_dir / "nginx.out"
        self.conf = render_nginx_conf(
            template.read_text(),
            listen=f"127.0.0.1:{port}",
            upstream=f"127.0.0.1:{upstream_port}",
            storage_root=storage_root,
            runtime_dir=runtime_dir,
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.conf)
        error_log = str(self.runtime_dir / "error.log")
        run([NGINX, "-t", "-q", "-e", error_log, "-c", str(self.conf_path), "-p", str(self.runtime_dir)], timeout=30)
        cmd = [NGINX, "-e", error_log, "-c", str(self.conf_path), "-p", str(self.runtime_dir), "-g", "daemon off;"]
        self.proc = _spawn(cmd, env=dict(os.environ), log_path=self.log_path, cwd=self.runtime_dir)
        try:
            wait_http(self.port, alive=lambda: self.proc.poll() is None, timeout=30)
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- {error_log}:\n{_tail(Path(error_log))}") from None

    def stop(self) -> None:
        _stop_group(self.proc, grace=10)
        self.proc = None

    def log_tail(self) -> str:
        return _tail(self.runtime_dir / "error.log", 15)


class PeerDistribution:
    """CNCF Distribution 2.8 via the shared peers script (no auth, filesystem storage)."""

    def __init__(self, *, peers_dir: Path, port: int, dir: Path):
        self.peers_dir = peers_dir
        self.port = port
        self.dir = dir
        self.started = False

    def start(self) -> None:
        run(
            ["bash", str(self.peers_dir / "start-distribution.sh"), str(self.port), str(self.dir)],
            timeout=300,
            start_new_session=True,
        )
        self.started = True
        wait_http(self.port, statuses=(200,), timeout=30)

    def stop(self) -> None:
        if self.started:
            run(["bash", str(self.peers_dir / "stop.sh"), str(self.dir)], check=False, timeout=30)
            self.started = False

    def alive(self) -> bool | None:
        return _pid_alive(_pid_from(self.dir / "pid")) if self.started else None

    def log_tail(self) -> str:
        return _tail(self.dir / "log", 15)


class PeerNginx:
    """nginx serving a directory as static files (sendfile on) via the shared peers script."""

    def __init__(self, *, peers_dir: Path, port: int, root: Path):
        self.peers_dir = peers_dir
        self.port = port
        self.root = root
        self.dir: Path | None = None

    def start(self) -> None:
        out = run(
            ["bash", str(self.peers_dir / "start-nginx.sh"), str(self.port), str(self.root)],
            timeout=300,
            start_new_session=True,
        ).stdout
        self.dir = Path(out.strip().splitlines()[-1])
        wait_http(self.port, path="/", statuses=(200, 403, 404), timeout=30)

    def stop(self) -> None:
        if self.dir is not None:
            run(["bash", str(self.peers_dir / "stop.sh"), str(self.dir)], check=False, timeout=30)
            if self.dir.name.startswith("peer-nginx."):
                run(["rm", "-rf", str(self.dir)], check=False)
            self.dir = None

    def alive(self) -> bool | None:
        return _pid_alive(_pid_from(self.dir / "pid")) if self.dir is not None else None

    def log_tail(self) -> str:
        return _tail(self.dir / "logs" / "error.log", 15) if self.dir is not None else ""


class MotoServer(_Process):
    """moto's S3 server (in memory) for the S3 mode of the project."""

    def __init__(self, *, port: int, log_dir: Path):
        self.port = port
        self.log_path = log_dir / "moto.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = _spawn(cmd, env=child_env({}), log_path=self.log_path)
        try:
            wait_http(self.port, path="/", statuses=(200,), alive=lambda: self.proc.poll() is None, timeout=60)
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- {self.log_path}:\n{_tail(self.log_path)}") from None

    def create_bucket(self, name: str) -> None:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        s3.create_bucket(Bucket=name)

    def stop(self) -> None:
        _stop_group(self.proc, grace=10)
        self.proc = None
