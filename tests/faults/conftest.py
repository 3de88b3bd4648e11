"""A registry process to crash: gunicorn on its own DATA_DIR and database, which a test SIGKILLs
(master and workers at once, as an OOM kill or a power cut would) and starts again on the same
data; pause points (quay_site/faults.py) to kill it at an exact step; and checks that what the
registry lists is whole.

The database follows the suite's configuration (a private PostgreSQL database beside the one
DATABASE_URL names, else SQLite under DATA_DIR); tests that need one kind ask for it. Redis is
left out: the server's Celery tasks go to kombu's filesystem broker, where no worker takes them,
so the tests run background work (deliveries, dispatch) themselves in processes they can kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e import images
from tests.e2e.conftest import POSTGRES_SCHEMES, _PostgresDatabase, _worker_id
from tests.storage.conftest import _FOREIGN_ENV_PREFIXES, free_port, wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "password-123"
MIB = 1024 * 1024

# Runs in the server's environment: alice (whose deleted and moved tags leave the time machine at
# once, so garbage collection has something to take) and an OAuth token for the REST API.
SEED = """
import json
from accounts import services as accounts
user = accounts.user_create(username="alice", password=PASSWORD)
user.namespace.time_machine_seconds = 0
user.namespace.save()
_, token = accounts.oauth_token_create(user=user, scopes=["repo:read", "repo:write", "repo:admin"])
print("SEED " + json.dumps({"oauth_token": token}))
"""


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FaultServer:
    """gunicorn serving the registry from ``data_dir``; ``kill()`` is SIGKILL, ``start()`` again
    resumes on the same data and port."""

    def __init__(self, data_dir: Path, database_url: str, **extra_env: str):
        self.data_dir = data_dir
        self.fault_dir = data_dir / "faults"
        self.fault_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "server.log"
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.seed: dict = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV_PREFIXES)}
        self.env.pop("REDIS_URL", None)
        self.env.update(
            DJANGO_SETTINGS_MODULE="quay_site.settings",
            DATA_DIR=str(data_dir),
            DATABASE_URL=database_url,
            HOME=str(data_dir),
            HOST="127.0.0.1",
            FAST_PASSWORD_HASHER="1",
            WEB_WORKERS="2",
            WEB_THREADS="4",
            PYTHONUNBUFFERED="1",
            # Everything unreferenced is collectable at once (the tests check what GC takes).
            GC_GRACE_SECONDS="0",
            QUAY_FAULT_DIR=str(self.fault_dir),
            # The webhook receivers of the tests listen on 127.0.0.1.
            OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
            LOGIN_FAILURES_PER_WINDOW="1000000",
            **extra_env,
        )

    # -- the process ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def manage(self, *args: str, env: dict | None = None, timeout: int = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"manage.py {args[0]} exited {result.returncode}:\n{output}"
        return result.stdout

    def shell(self, code: str, **env: str) -> str:
        return self.manage("shell", "-c", code, env=env)

    def shell_json(self, code: str, **env: str):
        """Run ``code`` that prints one line ``OUT <json>``; return the value."""
        out = self.shell(code, **env)
        return json.loads(next(line[4:] for line in out.splitlines() if line.startswith("OUT ")))

    def setup(self, template: tuple[Path, dict] | None = None) -> None:
        """Migrate and seed, or start from a copy of a migrated, seeded SQLite file."""
        if template is not None:
            shutil.copyfile(template[0], self.data_dir / "db.sqlite3")
            self.seed = template[1]
            return
        self.manage("migrate", "--noinput", "-v", "0")
        out = self.shell(f"PASSWORD = {PASSWORD!r}\n" + SEED)
        self.seed = json.loads(next(line[5:] for line in out.splitlines() if line.startswith("SEED ")))

    def start(self) -> None:
        assert not self.running, "already running"
        # Back on the same address after a crash, as a restarted service comes back (the squash
        # cache, for one, is keyed by the host name clients use).
        self.port = self.port or free_port()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "quay_site.wsgi:application", "-c", "quay_site/gunicorn_conf.py"],
                cwd=BASE_DIR,
                env={**self.env, "PORT": str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def answers():
            try:
                return requests.get(f"{self.url}/v2/", timeout=5).status_code == 401
            except requests.RequestException:  # not listening yet, or workers still booting
                return False

        wait_for(answers, timeout=90, what="the registry server", process=self.process, log=self.log)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the master and its workers at once; return when their port is closed."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

        def closed():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return True
            return False

        wait_for(closed, timeout=15, what="the killed server's workers to exit")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=15)

    # -- pause points --------------------------------------------------------------------------

    def arm(self, point: str) -> None:
        (self.fault_dir / f"{point}.reached").unlink(missing_ok=True)
        (self.fault_dir / point).touch()

    def disarm(self, point: str) -> None:
        (self.fault_dir / point).unlink(missing_ok=True)
        (self.fault_dir / f"{point}.reached").unlink(missing_ok=True)

    def wait_reached(self, point: str, timeout: float = 60) -> int:
        """The pid of the process waiting at ``point``."""
        reached = self.fault_dir / f"{point}.reached"
        wait_for(reached.exists, timeout=timeout, what=f"a process to reach {point}", log=self.log)
        return int(reached.read_text())

    # -- the registry API ----------------------------------------------------------------------

    def token(self, repo: str, actions: str = "pull,push,delete") -> str:
        response = requests.get(
            f"{self.url}/v2/auth",
            params={"service": self.host, "scope": f"repository:{repo}:{actions}"},
            auth=("alice", PASSWORD),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def auth(self, repo: str) -> dict:
        return {"Authorization": f"Bearer {self.token(repo)}"}

    def upload(self, repo: str, data: bytes, headers: dict | None = None) -> requests.Response:
        """A monolithic blob upload (POST with the digest and the whole body)."""
        return requests.post(
            f"{self.url}/v2/{repo}/blobs/uploads/",
            params={"digest": sha256(data)},
            data=data,
            headers={**(headers or self.auth(repo)), "Content-Type": "application/octet-stream"},
            timeout=60,
        )

    def put_manifest(self, repo: str, image: images.HandImage, tag: str, headers=None) -> requests.Response:
        return requests.put(
            f"{self.url}/v2/{repo}/manifests/{tag}",
            data=image.manifest,
            headers={**(headers or self.auth(repo)), "Content-Type": image.media_type},
            timeout=60,
        )

    def push(self, repo: str, image: images.HandImage, tag: str) -> images.HandImage:
        headers = self.auth(repo)
        for blob in image.blobs:
            response = self.upload(repo, blob.data, headers)
            assert response.status_code == 201, response.text
        response = self.put_manifest(repo, image, tag, headers)
        assert response.status_code == 201, response.text
        return image

    def head_blob(self, repo: str, digest: str) -> int:
        return requests.head(f"{self.url}/v2/{repo}/blobs/{digest}", headers=self.auth(repo), timeout=30).status_code

    def tag_digest(self, repo: str, tag: str) -> str | None:
        response = requests.head(
            f"{self.url}/v2/{repo}/manifests/{tag}",
            headers={**self.auth(repo), "Accept": ", ".join(ACCEPT)},
            timeout=30,
        )
        return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None

    def assert_intact(self, repo: str) -> dict[str, str]:
        """Every tag the registry lists pulls whole: its manifest and every blob it names come back
        with the digests they are addressed by. Returns {tag: manifest digest}."""
        headers = {**self.auth(repo), "Accept": ", ".join(ACCEPT)}
        response = requests.get(f"{self.url}/v2/{repo}/tags/list", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        found = {}
        for tag in response.json()["tags"] or []:
            response = requests.get(f"{self.url}/v2/{repo}/manifests/{tag}", headers=headers, timeout=30)
            assert response.status_code == 200, (tag, response.text)
            digest = sha256(response.content)
            assert response.headers["Docker-Content-Digest"] == digest
            doc = json.loads(response.content)
            for descriptor in [doc["config"], *doc["layers"]]:
                blob = requests.get(f"{self.url}/v2/{repo}/blobs/{descriptor['digest']}", headers=headers, timeout=60)
                assert blob.status_code == 200, (tag, descriptor["digest"], blob.status_code)
                assert sha256(blob.content) == descriptor["digest"] and len(blob.content) == descriptor["size"]
            found[tag] = digest
        return found

    # -- storage -------------------------------------------------------------------------------

    @property
    def storage(self) -> Path:
        return Path(self.env.get("STORAGE_DIR") or self.data_dir / "storage")

    def blob_files(self) -> set[str]:
        """Digests of the blob files storage holds."""
        return {f"sha256:{p.name}" for p in (self.storage / "blobs").rglob("*") if p.is_file()}

    def upload_files(self) -> list[Path]:
        return sorted(p for p in (self.storage / "uploads").iterdir() if not p.name.endswith(".lock"))


ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def age(paths, hours: float) -> None:
    """Make files look ``hours`` old: what garbage collection would see that much later."""
    then = time.time() - hours * 3600
    for path in paths:
        os.utime(path, (then, then))


def database_url_for(data_dir: Path, name: str, kind: str = "config"):
    """(url, drop) for a server's database: ``config`` follows the suite (PostgreSQL when
    DATABASE_URL is one), ``sqlite`` is always a file under ``data_dir``, and a PostgreSQL URL
    means a fresh database beside the one it names."""
    base = os.environ.get("DATABASE_URL", "") if kind == "config" else kind
    if urlsplit(base).scheme in POSTGRES_SCHEMES:
        database = _PostgresDatabase.create(base, f"faults_{name}_{_worker_id()}")
        return database.url, database.drop
    return f"sqlite:///{data_dir / 'db.sqlite3'}", lambda: None


_templates: dict[str, tuple[Path, dict]] = {}


def _sqlite_template(tmp_path_factory) -> tuple[Path, dict]:
    """A migrated, seeded SQLite database, made once per test process (migrating takes seconds)."""
    if "sqlite" not in _templates:
        data_dir = tmp_path_factory.mktemp("faults-template")
        server = FaultServer(data_dir, f"sqlite:///{data_dir / 'db.sqlite3'}")
        server.setup()
        _templates["sqlite"] = (data_dir / "db.sqlite3", server.seed)
    return _templates["sqlite"]


def serve(tmp_path_factory, name: str, *, kind: str = "config", **env: str):
    """Yield a set-up, started FaultServer; stop it and drop its database afterwards."""
    data_dir = tmp_path_factory.mktemp(f"faults-{name}")
    database_url, drop = database_url_for(data_dir, name, kind)
    server = FaultServer(data_dir, database_url, **env)
    try:
        server.setup(_sqlite_template(tmp_path_factory) if database_url.startswith("sqlite") else None)
        server.start()
        yield server
    finally:
        server.stop()
        drop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server the SIGKILL tests crash; each test leaves it running (or it is started again)."""
    # A flattening silent for 2 s is dead (the squash test waits that out rather than 60 s).
    yield from serve(tmp_path_factory, "kill", SQUASH_HEARTBEAT_SECONDS="0.5", SQUASH_STALE_SECONDS="2")


@pytest.fixture
def live(server):
    """``server``, running, with no pause point armed."""
    for path in server.fault_dir.iterdir():
        path.unlink()
    if not server.running:
        server.start()
    yield server
    for path in server.fault_dir.iterdir():
        path.unlink()
