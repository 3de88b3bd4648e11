"""Fixtures for storage tests: a real S3 API (moto's server in a subprocess) and a live registry
(gunicorn on SQLite) that a test can SIGKILL and start again on the same data directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests

from registry.storage import get_blob_store

BASE_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "password-123"
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"
# Variables that would point a subprocess at another database, bucket or broker than its own.
_FOREIGN_ENV_PREFIXES = ("S3_", "STORAGE_", "DATABASE_URL", "REDIS_URL", "CELERY_", "X_ACCEL", "DJANGO_SETTINGS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    """Poll ``predicate`` until it returns a truthy value; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            output = log.read_text() if log is not None and log.exists() else ""
            pytest.fail(f"{what}: process exited with {process.returncode}\n{output[-4000:]}")
        if time.monotonic() > deadline:
            output = log.read_text() if log is not None and log.exists() else ""
            pytest.fail(f"timed out waiting for {what}\n{output[-4000:]}")
        time.sleep(0.05)


def _answers_http(url: str):
    def check():
        try:
            return requests.get(url, timeout=5)
        except (requests.ConnectionError, requests.Timeout):
            # Not listening yet, or listening but still loading the app on a busy machine.
            return None

    return check


def _stop(process: subprocess.Popen) -> None:
    """Stop a server we started in its own session, whole process group included."""
    if process.poll() is None:
        # SIGINT to the master only (gunicorn's quick shutdown; it stops its workers): signalled
        # together with their master, workers could deadlock in a nested signal handler.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left of the group (a worker that outlived its master) goes too.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=15)


# ---------------------------------------------------------------------------------------------
# S3 through moto's server


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """One moto S3 server per test process; each test gets its own bucket in it."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for(_answers_http(f"{endpoint}/moto-api/"), timeout=30, what="moto server", process=process, log=log)
        yield endpoint
    finally:
        _stop(process)


class S3Bucket:
    """A bucket on the moto server, with a plain boto3 client to look behind the store's back."""

    def __init__(self, endpoint: str, name: str):
        self.endpoint = endpoint
        self.name = name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def s3(_fresh_blob_store, settings, moto_endpoint):
    """Switch the registry to S3 storage on a fresh bucket.

    Depends on the suite's autouse ``_fresh_blob_store`` so it runs after it and wins.
    """
    bucket = S3Bucket(moto_endpoint, f"registry-{uuid.uuid4().hex[:16]}")
    bucket.client.create_bucket(Bucket=bucket.name)
    settings.STORAGE_BACKEND = "s3"
    settings.S3_BUCKET = bucket.name
    settings.S3_ENDPOINT_URL = moto_endpoint
    settings.S3_REGION = REGION
    settings.S3_ACCESS_KEY_ID = ACCESS_KEY
    settings.S3_SECRET_ACCESS_KEY = SECRET_KEY
    get_blob_store.cache_clear()
    yield bucket
    get_blob_store.cache_clear()


# ---------------------------------------------------------------------------------------------
# A live registry process


class LiveRegistry:
    """gunicorn serving the registry from ``data_dir`` (SQLite, filesystem storage)."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.log = data_dir / "server.log"
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV_PREFIXES)}
        self.env.update(
            DJANGO_SETTINGS_MODULE="quay_site.settings",
            DATA_DIR=str(data_dir),
            # SQLite even when the suite itself runs on PostgreSQL: the server must own its data.
            DATABASE_URL=f"sqlite:///{data_dir / 'db.sqlite3'}",
            FAST_PASSWORD_HASHER="1",
            WEB_WORKERS="1",
            WEB_THREADS="4",
            HOST="127.0.0.1",
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "storage" / "uploads"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "storage" / "blobs"

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.port = free_port()
        env = dict(self.env, PORT=str(self.port))
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "quay_site.wsgi:application", "-c", "quay_site/gunicorn_conf.py"],
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: (r := _answers_http(f"{self.url}/v2/")()) is not None and r.status_code == 401,
            timeout=60,
            what="registry server",
            process=self.process,
            log=self.log,
        )

    def kill(self) -> None:
        """SIGKILL master and worker at once, as a crash or an OOM kill would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

        # The worker is not our child; once its listening socket is gone it has exited and the
        # kernel has released its files and locks.
        def refused():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return True
            return False

        wait_for(refused, timeout=15, what="killed server to release its port")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    def token(self, scope: str, username: str = "alice", password: str = PASSWORD) -> str:
        response = requests.get(
            f"{self.url}/v2/auth", params={"service": self.host, "scope": scope}, auth=(username, password), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]


@pytest.fixture(scope="module")
def live_data_dir(tmp_path_factory):
    """A migrated data directory with user alice, shared by the live tests of a module."""
    data_dir = tmp_path_factory.mktemp("live-registry")
    registry = LiveRegistry(data_dir)
    registry.manage("migrate", "--no-input", "-v0")
    registry.manage(
        "shell",
        "-c",
        f"from accounts.services import user_create; user_create(username='alice', password='{PASSWORD}')",
    )
    return data_dir


@pytest.fixture
def live_registry(live_data_dir):
    registry = LiveRegistry(live_data_dir)
    registry.start()
    yield registry
    registry.stop()
