"""What the live build tests share (``test_builds``, ``test_triggers``): the live server with
builds switched on, Quay's REST API as alice, build worker processes, and reading results back.

Fixtures stay in the test modules (thin wrappers around ``build_setup`` and ``worker_pool``), so
that each module gets its own live server.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import requests

from tests.e2e import images
from tests.e2e.conftest import BASE_DIR, PASSWORD, LiveRegistry

SECRET = "e2e-registration-secret-0123456789"
BUILD_SECONDS = 240

# Alice's API token, the organization's repository the builds push to, and a private base image
# repository that only the robot acme+ci (through its team) may read.
SETUP = """
import json
from accounts import services as accounts
from accounts.models import Namespace, User
from registry import services as registry
from registry.models import Role
from registry.permissions import Principal

alice = User.objects.get(username="alice")
_, token = accounts.oauth_token_create(user=alice, scopes=["repo:read", "repo:write", "repo:admin", "repo:create"])
as_alice = Principal(kind="user", user=alice)
acme = Namespace.objects.get(name="acme")
base = registry.repository_create(namespace=acme, name="base", principal=as_alice)
registry.repository_create(namespace=acme, name="app", principal=as_alice)
registry.repository_permission_set_user(
    repository=base, username="acme+ci", role=Role.READ, principal=as_alice, ip=None
)
print("SETUP " + json.dumps({"token": token}))
"""

BUILD_ROWS = """
import json
from builds.models import Build
rows = [
    {"id": str(b.uuid), "phase": b.phase, "attempts": b.attempts, "worker": b.worker.host if b.worker else None,
     "digests": b.manifest_digests}
    for b in Build.objects.filter(uuid__in=IDS)
]
print("ROWS " + json.dumps(rows))
"""


class BuildServer(LiveRegistry):
    """The live registry with its Celery worker (dispatch, sweeps); build workers come from the
    tests, so that they can be killed and counted."""

    serve_args = ("--no-builder",)


def tagged(output: str, tag: str):
    return json.loads(next(line[len(tag) + 1 :] for line in output.splitlines() if line.startswith(tag + " ")))


class Api:
    """Quay's REST API of the live server, as alice."""

    def __init__(self, server: LiveRegistry, token: str):
        self.base = f"{server.url}/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kw) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=60, **kw)

    def upload(self, data: bytes, mime_type: str) -> str:
        drop = self.request("POST", "/filedrop/", json={"mimeType": mime_type})
        assert drop.status_code == 200, drop.text
        put = self.session.put(drop.json()["url"], data=data, headers={"Content-Type": mime_type}, timeout=60)
        assert put.status_code in (200, 201, 204), put.text
        return drop.json()["file_id"]

    def start(self, repo: str, **body) -> dict:
        response = self.request("POST", f"/repository/{repo}/build/", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def build(self, repo: str, build_id: str) -> dict:
        response = self.request("GET", f"/repository/{repo}/build/{build_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def logs(self, repo: str, build_id: str) -> list[dict]:
        response = self.request("GET", f"/repository/{repo}/build/{build_id}/logs", params={"start": 0})
        assert response.status_code == 200, response.text
        return response.json()["logs"]

    def wait(self, repo: str, build_id: str, *phases: str, timeout: float = BUILD_SECONDS) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            view = self.build(repo, build_id)
            if view["phase"] in phases:
                return view
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"build {build_id} is {view['phase']}, not {phases}; log:\n"
                    + "\n".join(str(e) for e in self.logs(repo, build_id))
                )
            time.sleep(0.2)


class Worker:
    """A build worker process with its own work directory (buildah storage included)."""

    def __init__(self, server: LiveRegistry, name: str):
        # Short path: buildah's run root lives under it.
        self.work_dir = Path(tempfile.mkdtemp(prefix="qbe-"))
        self.name = name
        self.log_path = self.work_dir / "worker.log"
        env = {
            **os.environ,
            "SERVER": f"ws://127.0.0.1:{server.env['WS_PORT']}",
            "BUILDER_REGISTRATION_SECRET": SECRET,
            "BUILDER_WORK_DIR": str(self.work_dir / "work"),
            "BUILDER_HOST": name,
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(self.work_dir),
        }
        env.pop("REGISTRY_AUTH_FILE", None)
        with open(self.log_path, "ab") as log:
            # Its own session: killing it kills buildah and whatever buildah started.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "builder"],
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def remove(self) -> None:
        # vfs storage and chroot builds leave read-only trees; removed as buildah would.
        shutil.rmtree(self.work_dir, ignore_errors=True)


def build_setup(server: LiveRegistry, clients, tmp_path_factory) -> Api:
    """Alice's API, and busybox pushed as the private base image ``acme/base``."""
    out = server.shell(SETUP)
    api = Api(server, tagged(out, "SETUP")["token"])
    layout = images.busybox_layout(tmp_path_factory.mktemp("busybox") / "layout")
    clients.skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"alice:{PASSWORD}",
        f"oci:{layout}:latest",
        f"docker://{server.host}/acme/base:latest",
    )
    return api


def worker_pool(server: LiveRegistry):
    """A fixture body: yields ``start(name)`` to run build workers; stops and removes them after,
    failing if one of them logged a traceback."""
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(server, name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    logs = {worker.name: worker.log() for worker in started}
    for worker in started:
        worker.remove()
    # Kept beside the server's log: what a failed build test needs to be understood.
    for name, log in logs.items():
        (server.data_dir / f"worker-{name}.log").write_text(log)
    for name, log in logs.items():
        assert "Traceback" not in log, f"worker {name}:\n{log}"


def wait_registered(server: LiveRegistry, *hosts: str, timeout: float = 60) -> None:
    code = (
        "from builds.models import BuildWorker\n"
        "print('HOSTS ' + __import__('json').dumps(sorted(set("
        "BuildWorker.objects.exclude(state='offline').values_list('host', flat=True)))))"
    )
    deadline = time.monotonic() + timeout
    while True:
        present = set(tagged(server.shell(code), "HOSTS"))
        if set(hosts) <= present:
            return
        assert time.monotonic() < deadline, f"workers {hosts} did not register (present: {present})"
        time.sleep(0.5)


def build_rows(server: LiveRegistry, ids: list[str]) -> dict[str, dict]:
    rows = tagged(server.shell(f"IDS = {ids!r}\n" + BUILD_ROWS), "ROWS")
    return {row["id"]: row for row in rows}


def pulled_files(clients, server: LiveRegistry, ref: str, tmp_path: Path) -> dict[str, bytes]:
    """Every regular file of the image ``ref``, the upper layers winning."""
    target = tmp_path / "pulled"
    clients.skopeo(
        "copy", "--src-tls-verify=false", "--src-creds", f"alice:{PASSWORD}", f"docker://{ref}", f"dir:{target}"
    )
    manifest = json.loads((target / "manifest.json").read_text())
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        blob = (target / layer["digest"].split(":", 1)[1]).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            for member in tar:
                if member.isfile():
                    files[member.name.lstrip("./")] = tar.extractfile(member).read()
    return files


def phases_in_log(entries: list[dict]) -> list[str]:
    return [e["message"] for e in entries if e.get("type") == "phase"]


def log_outline(entries: list[dict]) -> str:
    """Phases and errors of a build log, one per line: what a failed assertion should show."""
    return "\n".join(
        f"{e['type']}: {e['message']} {e.get('data', {})}" for e in entries if e.get("type") in ("phase", "error")
    )
