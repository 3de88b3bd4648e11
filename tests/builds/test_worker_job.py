"""The build worker program alone (``python -m builder``), as a real process, against:

- a tiny build manager made here with the ``websockets`` server on 127.0.0.1, speaking the
  protocol of docs/BUILDS.md (it registers the worker, hands out jobs, acknowledges phases);
- a threaded HTTP server serving the build packages, only to the job's bearer token;
- the project's live registry (tests/e2e: a real ``manage.py serve``), holding the busybox base
  image, and the job token: a RepositoryAccessToken made through the server's own code.

The worker builds with real buildah (chroot isolation, vfs storage under a temp directory), pushes
with the job token, and the result is pulled back with skopeo and its layer read. The server's
real build manager is exercised by the end-to-end tests of the builds app.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from websockets.asyncio.server import serve

from tests.e2e.conftest import BASE_DIR, PASSWORD, busybox, clients, registry  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

SECRET = "worker-test-secret"
WAIT_SECONDS = 240

TOKEN_SCRIPT = """
from accounts import crypto
from accounts.models import User
from registry import services
from registry.models import Repository, RepositoryAccessToken, Role
from registry.permissions import Principal

alice = User.objects.get(username="alice")
repository = Repository.objects.filter(namespace=alice.namespace, name=NAME).first()
if repository is None:
    repository = services.repository_create(
        namespace=alice.namespace, name=NAME, principal=Principal(kind="user", user=alice)
    )
code = crypto.random_token(40)
RepositoryAccessToken.objects.create(
    repository=repository,
    friendly_name="build job",
    code_prefix=code[: RepositoryAccessToken.PREFIX_LENGTH],
    code_hash=crypto.token_hash(code),
    role=Role.WRITE,
)
print("TOKEN " + code)
"""


# ---------------------------------------------------------------------------------------------
# The stand-in build manager


class Manager:
    """A websocket server acting as the build manager, in a thread of its own."""

    def __init__(self, ssl_context=None):
        self.ssl_context = ssl_context
        self.messages: list[dict] = []
        self.registrations = 0
        self.accept_pushing = True
        self.connection = None
        self._cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start():
            self.server = await serve(self._handler, "127.0.0.1", 0, ssl=self.ssl_context)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def _record(self, message: dict) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    async def _handler(self, ws) -> None:
        first = json.loads(await ws.recv())
        self._record(first)
        if first.get("type") != "register" or first.get("secret") != SECRET:
            await ws.send(json.dumps({"type": "refused", "reason": "bad registration secret"}))
            await ws.close(4003, "refused")
            return
        # The connection first: a test that saw the registration count grow may act on it at once.
        self.connection = ws
        self.registrations += 1
        await ws.send(json.dumps({"type": "registered", "worker_id": str(uuid.uuid4()), "heartbeat_seconds": 1}))
        async for raw in ws:
            message = json.loads(raw)
            self._record(message)
            if message["type"] == "phase" and message["phase"] == "pushing":
                answer = {"type": "phase_ack", "build_id": message["build_id"], "phase": "pushing"}
                answer["accepted"] = self.accept_pushing
                if not self.accept_pushing:
                    answer["reason"] = "cancelled"
                await ws.send(json.dumps(answer))
            elif message["type"] == "result":
                await ws.send(json.dumps({"type": "result_ack", "build_id": message["build_id"]}))

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}"

    def send(self, message: dict) -> None:
        asyncio.run_coroutine_threadsafe(self.connection.send(json.dumps(message)), self.loop).result(10)

    def drop_connection(self) -> None:
        asyncio.run_coroutine_threadsafe(self.connection.close(1011, "going away"), self.loop).result(10)

    def wait_for(self, predicate, timeout: float = WAIT_SECONDS, what: str = "a message") -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; got {self.messages[-20:]}")
                self._cond.wait(left)
            return list(self.messages)

    def of_build(self, build_id: str) -> list[dict]:
        with self._cond:
            return [m for m in self.messages if m.get("build_id") == build_id]

    def wait_result(self, build_id: str) -> dict:
        self.wait_for(
            lambda ms: any(m["type"] == "result" and m.get("build_id") == build_id for m in ms), what="the result"
        )
        return next(m for m in self.of_build(build_id) if m["type"] == "result")

    def stop(self) -> None:
        async def close():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ---------------------------------------------------------------------------------------------
# The package server


class PackageServer:
    """Serves ``/buildpack/<id>`` to ``Authorization: Bearer <that package's token>`` only."""

    def __init__(self):
        self.packages: dict[str, tuple[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Authorization", "")))
                token, data = server.packages.get(self.path, (None, None))
                if data is None:
                    self.send_error(404)
                    return
                if self.headers.get("Authorization") != f"Bearer {token}":
                    self.send_error(401)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, token: str, data: bytes) -> str:
        path = f"/buildpack/{uuid.uuid4()}"
        self.packages[path] = (token, data)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------
# The worker process


class Worker:
    def __init__(self, manager: Manager, *, secret: str = SECRET, **extra_env: str):
        # Short path: buildah's run root lives under it.
        self.work_dir = Path(tempfile.mkdtemp(prefix="qb-"))
        self.log_path = self.work_dir / "worker.log"
        env = {
            **os.environ,
            "SERVER": manager.url,
            "BUILDER_REGISTRATION_SECRET": secret,
            "BUILDER_WORK_DIR": str(self.work_dir / "work"),
            "BUILDER_HOST": "test-worker",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        env.pop("REGISTRY_AUTH_FILE", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "builder"], cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def slot(self) -> Path:
        return self.work_dir / "work" / "w0"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def buildah(self, *args: str) -> str:
        storage = self.slot / "storage"
        argv = ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "run")]
        return subprocess.run(
            [*argv, "--storage-driver", "vfs", *args], capture_output=True, text=True, check=True, timeout=60
        ).stdout

    def stop(self) -> None:
        self.stop_process()
        self.remove()

    def stop_process(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        # vfs storage holds read-only trees; remove them as buildah would.
        shutil.rmtree(self.work_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def manager():
    m = Manager()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def packages():
    p = PackageServer()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def worker(manager):
    w = Worker(manager)
    manager.wait_for(lambda ms: manager.registrations >= 1, timeout=60, what="the worker's registration")
    yield w
    w.stop_process()
    log = w.log()
    w.remove()
    assert w.process.returncode == 0, log
    assert "Traceback" not in log, log


def job_token(live, name: str) -> str:
    out = live.shell(f"NAME = {name!r}\n" + TOKEN_SCRIPT)
    return next(line[6:] for line in out.splitlines() if line.startswith("TOKEN "))


def tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def make_job(registry, busybox, packages, *, repo: str, package: bytes, **overrides) -> dict:  # noqa: F811
    token = job_token(registry, repo)
    job = {
        "type": "job",
        "build_id": str(uuid.uuid4()),
        "attempt": 1,
        "token": token,
        "package_url": packages.add(token, package),
        "package_kind": "archive",
        "git": None,
        "context": "app",
        "dockerfile_path": "app/Dockerfile",
        "registry": registry.host,
        "registry_insecure": True,
        "repository": f"alice/{repo}",
        "tags": ["latest"],
        "pull_credentials": {"username": "alice", "password": PASSWORD},
    }
    job.update(overrides)
    return job


def phases(manager: Manager, build_id: str) -> list[str]:
    return [m["phase"] for m in manager.of_build(build_id) if m["type"] == "phase"]


def log_entries(manager: Manager, build_id: str) -> list[dict]:
    return [e for m in manager.of_build(build_id) if m["type"] == "log" for e in m["entries"]]


def layer_files(blob: bytes) -> dict[str, bytes]:
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return {m.name.lstrip("./"): tar.extractfile(m).read() for m in tar if m.isfile()}


def assert_cleaned_up(worker: Worker, build_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any((worker.slot / "jobs").iterdir()):
        time.sleep(0.2)
    assert list((worker.slot / "jobs").iterdir()) == []
    assert f"quay-build-{build_id}" not in worker.buildah("images", "--all", "--format", "{{.Name}}")


def pids_matching(*needles: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(needle in cmdline for needle in needles):
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------------------------------------
# Tests


def test_the_worker_builds_pushes_and_reports(registry, busybox, clients, manager, packages, worker, tmp_path):  # noqa: F811
    dockerfile = f"FROM {busybox.ref}\nRUN echo built-by-worker > /built.txt && echo RUN-OUTPUT-MARKER\n"
    package = tar_gz({"README": b"not in the context", "app/Dockerfile": dockerfile.encode(), "app/x.txt": b"x"})
    job = make_job(registry, busybox, packages, repo="worker-built", package=package, tags=["latest", "v1"])
    manager.send(job)
    result = manager.wait_result(job["build_id"])
    assert result["ok"] is True, (result, log_entries(manager, job["build_id"]), worker.log())

    assert phases(manager, job["build_id"]) == ["unpacking", "pulling", "building", "pushing"]
    assert all(m["attempt"] == 1 for m in manager.of_build(job["build_id"]) if m["type"] != "heartbeat")
    streams = "".join(e.get("stream", "") for e in log_entries(manager, job["build_id"]))
    assert "RUN-OUTPUT-MARKER" in streams
    assert "STEP 2/2: RUN echo built-by-worker" in streams
    # The package was fetched once, with the job token.
    assert [a for p, a in packages.requests if p in job["package_url"]] == [f"Bearer {job['token']}"]
    # Heartbeats named the build while it ran (the manager asked for one a second).
    assert any(m["type"] == "heartbeat" and m["build_id"] == job["build_id"] for m in manager.messages)

    assert result["image_id"].startswith("sha256:")
    assert result["manifest_digests"] and all(d.startswith("sha256:") for d in result["manifest_digests"])
    for tag in ("latest", "v1"):
        inspected = json.loads(
            clients.skopeo(
                "inspect",
                "--tls-verify=false",
                "--creds",
                f"alice:{PASSWORD}",
                f"docker://{registry.host}/alice/worker-built:{tag}",
            ).stdout
        )
        assert inspected["Digest"] in result["manifest_digests"]

    layout = tmp_path / "pulled"
    clients.skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        f"alice:{PASSWORD}",
        f"docker://{registry.host}/alice/worker-built:latest",
        f"oci:{layout}:latest",
    )
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    top = manifest["layers"][-1]["digest"].split(":")[1]
    assert layer_files((layout / "blobs" / "sha256" / top).read_bytes())["built.txt"] == b"built-by-worker\n"
    assert_cleaned_up(worker, job["build_id"])


def test_cancel_during_building_kills_buildah(registry, busybox, manager, packages, worker):  # noqa: F811
    marker = f"sleeping-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {busybox.ref}\nRUN echo {marker} && sleep 317\n"
    job = make_job(
        registry, busybox, packages, repo="worker-cancel", package=tar_gz({"app/Dockerfile": dockerfile.encode()})
    )
    manager.send(job)
    build_id = job["build_id"]
    manager.wait_for(
        lambda ms: any(
            marker in e.get("stream", "") for e in log_entries(manager, build_id) if "RUN" not in e.get("stream", "")
        ),
        what="the RUN step's output",
    )
    buildah_pids = pids_matching("buildah", str(worker.slot))
    sleep_pids = pids_matching("sleep 317")
    assert buildah_pids and sleep_pids

    manager.send({"type": "cancel", "build_id": build_id})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in buildah_pids + sleep_pids):
        time.sleep(0.2)
    assert not [pid for pid in buildah_pids + sleep_pids if Path(f"/proc/{pid}").exists()]
    assert_cleaned_up(worker, build_id)
    time.sleep(1.5)
    # Cancelled: nothing more about this build, no result and no further phase.
    assert phases(manager, build_id) == ["unpacking", "pulling", "building"]
    assert not [m for m in manager.of_build(build_id) if m["type"] == "result"]
    assert worker.process.poll() is None


def test_a_refused_pushing_phase_pushes_nothing(registry, busybox, clients, manager, packages, worker):  # noqa: F811
    job = make_job(
        registry,
        busybox,
        packages,
        repo="worker-refused",
        package=tar_gz({"app/Dockerfile": f"FROM {busybox.ref}\nRUN echo hi > /hi\n".encode()}),
    )
    manager.accept_pushing = False
    try:
        manager.send(job)
        manager.wait_for(lambda ms: "pushing" in phases(manager, job["build_id"]), what="the pushing phase")
        assert_cleaned_up(worker, job["build_id"])
    finally:
        manager.accept_pushing = True
    time.sleep(1)
    assert not [m for m in manager.of_build(job["build_id"]) if m["type"] == "result"]
    missing = clients.skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        f"alice:{PASSWORD}",
        f"docker://{registry.host}/alice/worker-refused:latest",
        check=False,
    )
    assert missing.returncode != 0 and "manifest unknown" in missing.stderr.lower()


@pytest.mark.parametrize(
    ("dockerfile", "kind", "message"),
    [
        ("FROM {base}\nFOOBAR x\n", "dockerfile", "Unknown instruction"),
        ("FROM {base}\nRUN exit 3\n", "build", "exit status 3"),
        ("FROM {registry}/alice/no-such-base\nRUN true\n", "pull", "no-such-base"),
        ("RUN true\n", "dockerfile", "no FROM"),
    ],
    ids=["syntax", "run", "pull", "no-from"],
)
def test_failures_report_their_error_kind(registry, busybox, manager, packages, worker, dockerfile, kind, message):  # noqa: F811
    text = dockerfile.format(base=busybox.ref, registry=registry.host)
    job = make_job(
        registry, busybox, packages, repo="worker-failing", package=tar_gz({"app/Dockerfile": text.encode()})
    )
    manager.send(job)
    result = manager.wait_result(job["build_id"])
    assert result["ok"] is False
    assert result["error_kind"] == kind, result
    assert message in result["message"]
    errors = [e["error"] for e in log_entries(manager, job["build_id"]) if "error" in e]
    assert errors == [result["message"]]
    assert_cleaned_up(worker, job["build_id"])


def test_an_unsafe_package_is_a_package_error(registry, busybox, manager, packages, worker):  # noqa: F811
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    job = make_job(registry, busybox, packages, repo="worker-failing", package=raw.getvalue())
    manager.send(job)
    result = manager.wait_result(job["build_id"])
    assert (result["ok"], result["error_kind"]) == (False, "package")
    assert "leaves the package" in result["message"]
    assert phases(manager, job["build_id"]) == ["unpacking"]
    assert not (worker.slot / "escape").exists() and not (worker.slot / "jobs" / "escape").exists()
    assert_cleaned_up(worker, job["build_id"])


def test_a_wrong_job_token_fails_the_download(registry, busybox, manager, packages, worker):  # noqa: F811
    job = make_job(registry, busybox, packages, repo="worker-failing", package=tar_gz({"app/Dockerfile": b"FROM x\n"}))
    job["token"] = "not-the-token"
    manager.send(job)
    result = manager.wait_result(job["build_id"])
    assert (result["ok"], result["error_kind"]) == (False, "package")
    assert "HTTP 401" in result["message"]


def test_the_worker_reconnects_after_losing_the_manager(manager, worker):
    before = manager.registrations
    manager.drop_connection()
    manager.wait_for(lambda ms: manager.registrations > before, timeout=60, what="a new registration")
    register = [m for m in manager.messages if m["type"] == "register"][-1]
    assert register["host"] == "test-worker" and register["capacity"] == 1 and register["version"]


@pytest.fixture
def own_manager():
    """A manager of the test's own: the module's one keeps talking to the module's worker."""
    m = Manager()
    yield m
    m.stop()


def test_a_wrong_secret_ends_the_worker(own_manager):
    worker = Worker(own_manager, secret="wrong")
    try:
        assert worker.process.wait(timeout=60) == 2
        assert "refused" in worker.log()
        assert own_manager.registrations == 0
    finally:
        worker.stop()


def test_sigterm_stops_a_building_worker_cleanly(registry, busybox, packages, own_manager):  # noqa: F811
    worker = Worker(own_manager)
    try:
        own_manager.wait_for(lambda ms: own_manager.registrations == 1, timeout=60, what="the registration")
        marker = f"sigterm-{uuid.uuid4().hex[:8]}"
        dockerfile = f"FROM {busybox.ref}\nRUN echo {marker} && sleep 331\n"
        job = make_job(
            registry, busybox, packages, repo="worker-sigterm", package=tar_gz({"app/Dockerfile": dockerfile.encode()})
        )
        own_manager.send(job)
        own_manager.wait_for(
            lambda ms: any(e.get("stream", "").startswith(marker) for e in log_entries(own_manager, job["build_id"])),
            what="the RUN step's output",
        )
        children = pids_matching("buildah", str(worker.slot)) + pids_matching("sleep 331")
        assert children
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=60) == 0
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
        assert list((worker.slot / "jobs").iterdir()) == []
        assert not [m for m in own_manager.of_build(job["build_id"]) if m["type"] == "result"]
        assert "Traceback" not in worker.log()
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def git_source(tmp_path_factory, busybox):  # noqa: F811
    """A git repository with two commits, served over HTTP (git's "dumb" protocol) on 127.0.0.1;
    each commit's Dockerfile echoes a different word."""
    base = tmp_path_factory.mktemp("git")
    work, served = base / "work", base / "served"
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(base)}

    def git(*args: str, cwd: Path = work) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout

    work.mkdir()
    git("init", "--quiet", "--initial-branch=main")
    git("config", "user.email", "dev@example.com")
    git("config", "user.name", "dev")
    shas = []
    for word in ("commit-one", "commit-two"):
        (work / "app").mkdir(exist_ok=True)
        (work / "app" / "Dockerfile").write_text(f"FROM {busybox.ref}\nRUN echo {word}-marker\n")
        git("add", "-A")
        git("commit", "--quiet", "-m", word)
        shas.append(git("rev-parse", "HEAD").strip())
    served.mkdir()
    git("clone", "--quiet", "--bare", str(work), str(served / "repo.git"), cwd=base)
    git("update-server-info", cwd=served / "repo.git")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/repo.git", shas
    httpd.shutdown()
    httpd.server_close()


def test_a_git_source_is_built_at_the_given_commit(registry, busybox, manager, packages, worker, git_source):  # noqa: F811
    url, (first, _second) = git_source
    job = make_job(registry, busybox, packages, repo="worker-git", package=b"")
    # Not the branch head: the older commit, with a (throwaway) deploy key as a trigger sends it.
    job.update(package_url=None, git={"url": url, "sha": first, "private_key": "-----BEGIN KEY-----\nx\n"})
    manager.send(job)
    result = manager.wait_result(job["build_id"])
    assert result["ok"] is True, (result, log_entries(manager, job["build_id"]))
    streams = "".join(e.get("stream", "") for e in log_entries(manager, job["build_id"]))
    assert f"Checked out {first}" in streams
    assert "commit-one-marker" in streams and "commit-two-marker" not in streams
    assert_cleaned_up(worker, job["build_id"])


def test_an_unknown_git_commit_is_a_git_error(registry, busybox, manager, packages, worker, git_source):  # noqa: F811
    url, _shas = git_source
    job = make_job(registry, busybox, packages, repo="worker-git", package=b"")
    job.update(package_url=None, git={"url": url, "sha": "0" * 40, "private_key": None})
    manager.send(job)
    result = manager.wait_result(job["build_id"])
    assert (result["ok"], result["error_kind"]) == (False, "git")
    assert "git checkout failed" in result["message"]
    assert_cleaned_up(worker, job["build_id"])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (the guide's self-signed server) and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_wss_with_a_custom_ca_file(tmp_path):
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    tls_manager = Manager(ssl_context=context)
    untrusting = Worker(tls_manager)
    trusting = Worker(tls_manager, BUILDER_CA_FILE=str(cert))
    try:
        assert tls_manager.url.startswith("wss://")
        tls_manager.wait_for(lambda ms: tls_manager.registrations == 1, timeout=60, what="the registration")
        register = next(m for m in tls_manager.messages if m["type"] == "register")
        assert register["secret"] == SECRET
        # Without the CA the certificate is refused, so that worker never registered.
        deadline = time.monotonic() + 30
        while "CERTIFICATE_VERIFY_FAILED" not in untrusting.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusting.log()
        assert tls_manager.registrations == 1
    finally:
        untrusting.stop()
        trusting.stop()
        tls_manager.stop()
