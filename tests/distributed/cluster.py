"""An installation in distributed mode on 127.0.0.1, started the way an operator starts it on
separate machines: PostgreSQL and Redis (``.ci/services.sh``), moto's S3 server, and each process
of the registry on its own command line with its own ``DATA_DIR``.

What the processes share is only what README's "Distributed mode" lists: the database, Redis, the
bucket, and configuration (the same secrets, each process holding its own copy of the token
signing key). Nothing goes through a local directory that two of them see.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import requests
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

BASE_DIR = Path(__file__).resolve().parents[2]
START_SECONDS = 90
S3_ACCESS_KEY = "distributed-access-key"
S3_SECRET_KEY = "distributed-secret-key"
S3_REGION = "us-east-1"
REGISTRATION_SECRET = "distributed-registration-secret-0123456789"

# Variables of the test's own environment that would point a process at another database, broker,
# bucket or configuration than the installation's (CI runs the suite with DATABASE_URL/REDIS_URL).
_FOREIGN_PREFIXES = (
    "DATABASE_URL",
    "REDIS_",
    "CELERY_",
    "S3_",
    "STORAGE_",
    "X_ACCEL",
    "DJANGO_SETTINGS",
    "DATA_DIR",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "REGISTRY_TOKEN",
    "SERVER_HOSTNAME",
    "PREFERRED_URL_SCHEME",
    "HOST",
    "PORT",
    "WS_",
    "WEB_",
    "FEATURE_",
    "BUILD_",
    "BUILDER_",
    "NOTIFICATION_",
    "OUTBOUND_",
    "GC_",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environ() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}


def wait_until(predicate, *, timeout: float, what: str, processes: list[Process] = ()):
    """Poll ``predicate`` until it is truthy; fail at once when one of ``processes`` died."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for process in processes:
            if not process.alive():
                raise AssertionError(f"{what}: {process.name} exited\n{process.log_tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(p.log_tail() for p in processes)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


def _answers(url: str, status: int):
    def check():
        try:
            return requests.get(url, timeout=2).status_code == status
        except (requests.ConnectionError, requests.Timeout):
            return False

    return check


def _accepts(port: int):
    def check():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    return check


# ---------------------------------------------------------------------------------------------
# One process of the installation


@dataclass
class Process:
    """A command with its environment, run in a session of its own so that SIGKILL reaches its
    children too (gunicorn's workers, Celery's pool), as when a machine dies."""

    name: str
    cmd: list[str]
    env: dict
    log_path: Path
    ready: object = None  # a predicate: started and serving
    popen: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(self.cmd)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.cmd,
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        if self.ready is not None:
            wait_until(self.ready, timeout=timeout, what=f"{self.name} to be ready", processes=[self])

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group at once: no cleanup, no acknowledgement."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ({self.log_path}):\n{self.log()[-chars:]}"


# ---------------------------------------------------------------------------------------------
# The shared services


@dataclass
class Services:
    """PostgreSQL + Redis from ``.ci/services.sh`` (a private state directory) and moto's S3."""

    state_dir: Path
    moto: Process | None = None
    env: dict = field(default_factory=dict)
    s3_endpoint: str = ""
    bucket: str = ""

    def start(self, log_dir: Path) -> None:
        result = subprocess.run(
            [str(BASE_DIR / ".ci" / "services.sh"), "start"],
            env={**clean_environ(), "QUAY_SERVICES_DIR": str(self.state_dir)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise AssertionError(f".ci/services.sh start failed:\n{result.stdout}\n{result.stderr}")
        for line in result.stdout.splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                self.env[key] = value
        assert {"DATABASE_URL", "REDIS_URL"} <= set(self.env), result.stdout

        port = free_port()
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        self.moto = Process(
            name="moto",
            cmd=[sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=clean_environ(),
            log_path=log_dir / "moto.log",
            ready=_answers(f"{self.s3_endpoint}/moto-api/", 200),
        ).start()
        self.moto.wait_ready(30)
        self.bucket = f"registry-{uuid.uuid4().hex[:12]}"
        self.s3_client().create_bucket(Bucket=self.bucket)

    def s3_client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )

    def stop(self) -> None:
        if self.moto is not None:
            self.moto.stop()
        subprocess.run(
            [str(BASE_DIR / ".ci" / "services.sh"), "stop"],
            env={**clean_environ(), "QUAY_SERVICES_DIR": str(self.state_dir)},
            capture_output=True,
            timeout=120,
        )


# ---------------------------------------------------------------------------------------------
# The installation


class Installation:
    """The registry's processes over ``services``, each with its own DATA_DIR under ``root``."""

    def __init__(self, root: Path, services: Services, **extra_env: str):
        self.root = root
        self.services = services
        self.web_ports = {"web-a": free_port(), "web-b": free_port()}
        self.ws_port = free_port()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._token_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # One configuration for every process, as an operator's env file would be.
        self.common = {
            **clean_environ(),
            **services.env,
            "DJANGO_SETTINGS_MODULE": "quay_site.settings",
            "PYTHONUNBUFFERED": "1",
            "SECRET_KEY": Fernet.generate_key().decode() + uuid.uuid4().hex,
            "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": services.bucket,
            "S3_ENDPOINT_URL": services.s3_endpoint,
            "S3_REGION": S3_REGION,
            "S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            # The public address of the registry (a load balancer's, in production): the token
            # service and realm, the registry build workers push to, notification links. Web B
            # stands in for it here; web A accepts the tokens it issues.
            "SERVER_HOSTNAME": f"127.0.0.1:{self.web_ports['web-b']}",
            "HOST": "127.0.0.1",
            "WS_PORT": str(self.ws_port),
            "FEATURE_BUILD_SUPPORT": "true",
            "BUILDER_REGISTRATION_SECRET": REGISTRATION_SECRET,
            "FAST_PASSWORD_HASHER": "1",
            "WEB_WORKERS": "1",
            "WEB_THREADS": "4",
            **extra_env,
        }
        self.processes: dict[str, Process] = {}

    def host(self, web: str) -> str:
        return f"127.0.0.1:{self.web_ports[web]}"

    def url(self, web: str) -> str:
        return f"http://{self.host(web)}"

    def _env(self, name: str, **extra: str) -> dict:
        """The common configuration plus a DATA_DIR of the process's own (its "machine")."""
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        key_file = data_dir / "registry-token-key.pem"
        if not key_file.exists():
            key_file.write_bytes(self._token_key)
            key_file.chmod(0o600)
        return {
            **self.common,
            "DATA_DIR": str(data_dir),
            # gunicorn and celery keep files under $HOME: the machine's, not the real home.
            "HOME": str(data_dir),
            "REGISTRY_TOKEN_KEY_FILE": str(key_file),
            **extra,
        }

    def manage(self, *args: str) -> str:
        """``manage.py`` on an administration machine of its own."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self._env("admin"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    def _add(self, name: str, cmd: list[str], env: dict, ready=None) -> Process:
        process = Process(name=name, cmd=cmd, env=env, log_path=self.root / f"{name}.log", ready=ready)
        self.processes[name] = process
        return process

    def define(self, builder_work_dir: Path) -> None:
        py = sys.executable
        for web, port in self.web_ports.items():
            self._add(
                web,
                [py, "-m", "gunicorn", "quay_site.wsgi:application", "-c", "quay_site/gunicorn_conf.py"],
                self._env(web, PORT=str(port)),
                ready=_answers(f"http://127.0.0.1:{port}/v2/", 401),
            )
        self._add(
            "ws",
            [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.ws_port), "quay_site.asgi:application"],
            self._env("ws"),
            ready=_accepts(self.ws_port),
        )
        for worker in ("worker-1", "worker-2"):
            log_path = self.root / f"{worker}.log"
            self._add(
                worker,
                [py, "-m", "celery", "-A", "quay_site", "worker", "-n", f"{worker}@%h", "--loglevel=INFO",
                 "--concurrency=1", "--without-gossip", "--without-mingle"],
                self._env(worker),
                ready=_log_says(log_path, " ready."),
            )  # fmt: skip
        self._add(
            "beat",
            [py, "-m", "celery", "-A", "quay_site", "beat", "--loglevel=INFO"],
            self._env("beat"),
            ready=_log_says(self.root / "beat.log", "beat: Starting"),
        )
        # A build worker needs no database, bucket or secret key: only the websocket address and
        # the registration secret (and buildah, with its storage under its own work directory).
        builder_env = {
            **clean_environ(),
            "SERVER": f"ws://127.0.0.1:{self.ws_port}",
            "BUILDER_REGISTRATION_SECRET": REGISTRATION_SECRET,
            "BUILDER_WORK_DIR": str(builder_work_dir / "work"),
            "BUILDER_HOST": "distributed-builder",
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(builder_work_dir),
        }
        builder_env.pop("REGISTRY_AUTH_FILE", None)
        self._add("builder", [py, "-m", "builder"], builder_env)

    def start_all(self) -> None:
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_ready()

    def restart(self, name: str) -> None:
        process = self.processes[name]
        process.start()
        process.wait_ready()

    def stop_all(self) -> None:
        """SIGTERM to every process at once, then SIGKILL to whatever is left after 20 s."""
        running = [p for p in self.processes.values() if p.alive()]
        for process in running:
            process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in running:
            try:
                process.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            if process.popen is not None:
                process.kill()

    def logs(self) -> str:
        return "\n".join(p.log_tail() for p in self.processes.values())


def _log_says(path: Path, needle: str):
    def check():
        try:
            return needle in path.read_text(errors="replace").rsplit("--- start", 1)[-1]
        except FileNotFoundError:
            return False

    return check


def tagged_json(output: str, tag: str):
    return json.loads(next(line[len(tag) + 1 :] for line in output.splitlines() if line.startswith(tag + " ")))
