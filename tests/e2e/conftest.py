"""A live registry per test process, and the real clients that talk to it.

The server is the production entry point (``manage.py serve --no-worker``: gunicorn with the
project's config) on a free port of 127.0.0.1, with its own DATA_DIR and database, so
pytest-xdist workers never share state. Its data is made through the project's own services in
a ``manage.py shell`` run against the server's environment: pytest-django's test database is a
different database and the server would not see it.

Clients (skopeo, podman, buildah) run with a private auth file, temp directory and container
storage under the test's temp directory, so nothing touches the host's configuration or images.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.e2e import images

BASE_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "password-123"
SERVER_START_SECONDS = 90
CLIENT_TIMEOUT_SECONDS = 180
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql", "postgis")

# Runs inside the live server's environment; prints one JSON line with the secrets it made.
SEED_SCRIPT = """
import json
from accounts import services as accounts
from accounts.models import Team
from registry import services as registry
from registry.models import Repository
from registry.permissions import Principal

alice = accounts.user_create(username="alice", password=PASSWORD)
accounts.user_create(username="bob", password=PASSWORD)
acme = accounts.organization_create(name="acme", creator=alice)
ci_team = accounts.team_create(organization=acme, name="ci", role=Team.Role.CREATOR)
robot, robot_token = accounts.robot_create(namespace=acme, short_name="ci")
accounts.team_member_add(team=ci_team, user=robot)
_, app_token = accounts.app_token_create(user=alice, title="e2e")
as_alice = Principal(kind="user", user=alice)
registry.repository_create(
    namespace=alice.namespace, name="public-images", principal=as_alice, visibility=Repository.Visibility.PUBLIC
)
registry.repository_create(
    namespace=alice.namespace, name="private-images", principal=as_alice, visibility=Repository.Visibility.PRIVATE
)
registry.repository_create(
    namespace=alice.namespace, name="charts", principal=as_alice, kind=Repository.Kind.APPLICATION
)
print("SEED " + json.dumps({"robot": robot.username, "robot_token": robot_token, "app_token": app_token}))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


class ClientError(AssertionError):
    """A client command failed; carries its output for the assertion message."""


def run(cmd: list[str], *, env: dict | None = None, check: bool = True, timeout: int = CLIENT_TIMEOUT_SECONDS, **kw):
    """Run a command, capturing output; on failure the message shows what the client said."""
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise ClientError(
            f"{' '.join(cmd)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


# ---------------------------------------------------------------------------------------------
# The database of a live server


@dataclass
class _PostgresDatabase:
    """A fresh PostgreSQL database beside the one DATABASE_URL names, dropped at the end."""

    url: str
    name: str
    config: dict

    @classmethod
    def create(cls, base_url: str, worker: str) -> _PostgresDatabase:
        import environ

        config = environ.Env.db_url_config(base_url)
        # Not pytest-django's test_<name>[_gwN]: the live server must never meet it.
        name = f"{config['NAME']}_e2e_{worker}"
        parts = urlsplit(base_url)
        url = urlunsplit(parts._replace(path=f"/{name}"))
        db = cls(url=url, name=name, config=config)
        db._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}")
        return db

    def _execute(self, *statements: str) -> None:
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(
            dbname="postgres",
            user=self.config.get("USER") or None,
            password=self.config.get("PASSWORD") or None,
            host=self.config.get("HOST") or None,
            port=self.config.get("PORT") or None,
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(sql.SQL(statement).format(sql.Identifier(self.name)))
        finally:
            conn.close()

    def drop(self) -> None:
        self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)")


# ---------------------------------------------------------------------------------------------
# The live server


@dataclass
class LiveRegistry:
    host: str  # "127.0.0.1:<port>", the registry name clients use
    env: dict
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = None
    seed: dict = field(default_factory=dict)
    # The registry alone: no Celery worker (its tests need none) and no local build worker.
    serve_args = ("--no-worker", "--no-builder")

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def manage(self, *args: str) -> str:
        return run([sys.executable, "manage.py", *args], env=self.env, cwd=BASE_DIR).stdout

    def shell(self, code: str) -> str:
        """Run Python in the server's environment (its database, storage and settings)."""
        return self.manage("shell", "-c", code)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def token(self, *scopes: str, username: str | None = None, password: str | None = None) -> str:
        auth = (username, password) if username else None
        response = requests.get(
            f"{self.url}/v2/auth", params={"service": self.host, "scope": list(scopes)}, auth=auth, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def request(self, method: str, path: str, *scopes: str, username=None, password=None, headers=None, **kw):
        """An HTTP request to the registry with a bearer token for ``scopes`` (none: anonymous)."""
        headers = dict(headers or {})
        if scopes:
            headers["Authorization"] = "Bearer " + self.token(*scopes, username=username, password=password)
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kw)

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        seed = self.shell(f"PASSWORD = {PASSWORD!r}\n" + SEED_SCRIPT)
        self.seed = json.loads(next(line[5:] for line in seed.splitlines() if line.startswith("SEED ")))
        with open(self.log_path, "ab") as log:
            # A session of its own: teardown can end gunicorn's workers too, even if serve dies.
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", *self.serve_args],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the live server exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = requests.get(f"{self.url}/v2/", timeout=5)
                if response.status_code == 401:
                    return
            except (requests.ConnectionError, requests.Timeout):  # bound, workers still booting
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the live server did not answer /v2/ within {SERVER_START_SECONDS}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid  # the session leader: its pid is the group id
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # whatever of ours is left (gunicorn workers)
        except ProcessLookupError:
            pass
        self.process.wait()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """The live registry of this test process, seeded with users, an organization and repositories:

    alice and bob (password ``PASSWORD``); organization ``acme`` owned by alice, whose team ``ci``
    (role creator) holds the robot ``acme+ci``; an app token of alice; repositories
    ``alice/public-images`` (public), ``alice/private-images`` and ``alice/charts`` (kind
    application).
    """
    yield from live_server(tmp_path_factory, "registry", LiveRegistry, ACCESS_LOG="1")


def live_server(tmp_path_factory, name: str, server_class, **extra_env):
    """Start ``server_class`` on a free port with its own DATA_DIR and database; yield it, then
    stop it and drop the database. Shared by every live-server fixture of the suite."""
    worker = _worker_id()
    data_dir = tmp_path_factory.mktemp(f"{name}-{worker}")
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "quay_site.settings",
        "DATA_DIR": str(data_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WS_PORT": str(_free_port()),  # serve's websocket process (Daphne); 8787 may be taken
        # Servers share the suite's Redis: their queues, channel groups and cache keys must not
        # meet (one server's worker would run another's tasks against its own database).
        "REDIS_KEY_PREFIX": f"{name}-{worker}:",
        "FAST_PASSWORD_HASHER": "1",
        "WEB_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
        # gunicorn keeps a control socket under $HOME: one per server, none in the real home.
        "HOME": str(data_dir),
        **extra_env,
    }
    env.pop("STORAGE_DIR", None)
    database = None
    base_url = os.environ.get("DATABASE_URL", "")
    if urlsplit(base_url).scheme in POSTGRES_SCHEMES:
        database = _PostgresDatabase.create(base_url, f"{name}_{worker}")
        env["DATABASE_URL"] = database.url
    else:
        env.pop("DATABASE_URL", None)  # SQLite under DATA_DIR
    server = server_class(host=f"127.0.0.1:{port}", env=env, data_dir=data_dir, log_path=data_dir / "server.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if database is not None:
            database.drop()


# ---------------------------------------------------------------------------------------------
# Clients


@dataclass
class Clients:
    """skopeo, podman and buildah with private state under ``root``."""

    root: Path
    env: dict

    def skopeo(self, *args: str, check: bool = True):
        return run(["skopeo", *args], env=self.env, check=check)

    def _storage(self, tool: str) -> list[str]:
        base = self.root / tool
        return ["--root", str(base / "storage"), "--runroot", str(base / "run"), "--storage-driver", "vfs"]

    def podman(self, *args: str, check: bool = True):
        base = self.root / "podman"
        flags = [
            *self._storage("podman"),
            "--tmpdir",
            str(base / "tmp"),
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
        ]
        return run(["podman", *flags, *args], env=self.env, check=check)

    def buildah(self, *args: str, check: bool = True):
        return run(["buildah", *self._storage("buildah"), *args], env=self.env, check=check)


@pytest.fixture(scope="session")
def clients():
    # Not under pytest's deep temp path: podman refuses a runroot longer than 50 characters.
    root = Path(tempfile.mkdtemp(prefix="e2e-clients-"))
    auth_file = root / "auth.json"
    auth_file.write_text('{"auths": {}}')
    for name in ("tmp", "run", "config"):
        (root / name).mkdir()
    tmp = root / "tmp"
    env = {
        **os.environ,
        # Credentials come from --creds only; a login elsewhere on the host must not leak in.
        "REGISTRY_AUTH_FILE": str(auth_file),
        "TMPDIR": str(tmp),
        "HOME": str(root),
        "XDG_RUNTIME_DIR": str(root / "run"),
        "XDG_CONFIG_HOME": str(root / "config"),
    }
    yield Clients(root=root, env=env)
    # vfs storage and chroot builds leave read-only and root-owned trees; remove them here.
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class PushedImage:
    ref: str  # "<host>/<repo>:<tag>"
    digest: str
    layout: Path


@pytest.fixture(scope="session")
def busybox(registry, clients, tmp_path_factory):
    """The busybox image (umoci + busybox-static) pushed as ``alice/busybox:latest``."""
    layout = images.busybox_layout(tmp_path_factory.mktemp("busybox") / "layout")
    ref = f"{registry.host}/alice/busybox:latest"
    digest_file = layout.parent / "digest"
    clients.skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"alice:{PASSWORD}",
        "--digestfile",
        str(digest_file),
        f"oci:{layout}:latest",
        f"docker://{ref}",
    )
    return PushedImage(ref=ref, digest=digest_file.read_text().strip(), layout=layout)
