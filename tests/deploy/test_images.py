"""The two images of deploy/build-images.sh build here (the Debian base image made locally from
the apt mirror, since no registry can be reached), and the server image runs: web with its
migrations, ws and a Celery worker, each in a container of its own on one DATA_DIR volume,
answering /v2/ and a skopeo push and pull; the builder image starts.

The images are built into QUAY_IMAGE_STORE (default /var/tmp/quay-image-store) with buildah's
layer cache, so the first run takes minutes and the next ones, with the same sources, seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.deploy import support
from tests.e2e import images
from tests.e2e.conftest import _free_port, _worker_id

# Starts everything it needs itself, whatever the suite's DATABASE_URL says: CI runs it once.
pytestmark = [pytest.mark.e2e, pytest.mark.config_independent]

STORE = Path(os.environ.get("QUAY_IMAGE_STORE") or "/var/tmp/quay-image-store")
SERVER_IMAGE = "localhost/quay-server:test"
BUILDER_IMAGE = "localhost/quay-builder:test"
BUILD_SECONDS = 3600
PASSWORD = "password-123"
UID = 10001  # the image's quay user


def _run(cmd, *, timeout=300, check=True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def podman(*args, **kw) -> subprocess.CompletedProcess:
    """podman on the build store (it sees buildah's images), no system configuration touched."""
    driver = (STORE / "driver").read_text().strip()  # what build-images.sh chose
    (STORE / "podman-tmp").mkdir(parents=True, exist_ok=True)
    flags = ["--root", STORE / driver / "root", "--runroot", STORE / driver / "run", "--storage-driver", driver,
             "--tmpdir", STORE / "podman-tmp", "--events-backend", "none", "--cgroup-manager", "cgroupfs"]  # fmt: skip
    return _run(["podman", *flags, *args], **kw)


RUN = ["run", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network", "host"]


def _build() -> float:
    for tool in ("buildah", "podman", "mmdebstrap", "runc", "skopeo"):
        assert shutil.which(tool), f"{tool} is needed (see README: Running the tests)"
    env = {**os.environ, "QUAY_IMAGE_STORE": str(STORE), "SERVER_IMAGE": SERVER_IMAGE, "BUILDER_IMAGE": BUILDER_IMAGE}
    started = time.monotonic()
    result = _run([support.DEPLOY / "build-images.sh", "--local-base", "--prune"], env=env, timeout=BUILD_SECONDS)
    seconds = time.monotonic() - started
    (STORE / "last-build.log").write_text(f"{seconds:.0f}s\n{result.stdout}{result.stderr}")
    return seconds


def _wait_for(check, what: str, container: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip() != "true":
            break
        try:
            if check():
                return
        except (requests.ConnectionError, requests.Timeout, OSError):
            pass
        time.sleep(0.5)
    logs = podman("logs", container, check=False)
    raise AssertionError(f"{container}: {what} did not happen:\n{logs.stdout}\n{logs.stderr}")


def test_images_build_and_run(clients, tmp_path):
    """One test, so that one test process builds (the other goes on with the rest of the suite)."""
    seconds = _build()
    _check_server_image(clients, tmp_path)
    _check_builder_image()
    print(f"images built in {seconds:.0f}s")


def _check_server_image(clients, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, UID, UID)
    web_port, ws_port = _free_port(), _free_port()
    suffix = f"{_worker_id()}-{os.getpid()}"
    names = {role: f"quay-test-{role}-{suffix}" for role in ("web", "ws", "worker")}
    common = ["-v", f"{data}:/var/lib/quay", "-e", "HOST=127.0.0.1", "-e", f"PORT={web_port}",
              "-e", f"WS_PORT={ws_port}", "-e", "WEB_WORKERS=1"]  # fmt: skip
    try:
        podman(*RUN, "-d", "--name", names["web"], *common, "-e", "QUAY_MIGRATE_AT_START=1",
               "-e", "DJANGO_SUPERUSER_USERNAME=alice", "-e", f"DJANGO_SUPERUSER_PASSWORD={PASSWORD}",
               SERVER_IMAGE, "web")  # fmt: skip
        url = f"http://127.0.0.1:{web_port}"
        _wait_for(lambda: requests.get(f"{url}/v2/", timeout=5).status_code == 401, "/v2/ answering", names["web"])
        challenge = requests.get(f"{url}/v2/", timeout=5).headers["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="{url}/v2/auth"')
        # Not root inside; static files collected at build time are served.
        assert podman("exec", names["web"], "id", "-u").stdout.strip() == str(UID)
        assert requests.get(f"{url}/static/admin/css/base.css", timeout=10).status_code == 200
        roles = podman("exec", names["web"], "/usr/local/bin/quay-entrypoint", "roles").stdout.split()
        assert set(roles) == support.entrypoint_roles() - {"roles"}

        # A push and a pull with skopeo, byte for byte.
        image = images.hand_image(layer_count=2, layer_bytes=64 * 1024)
        layout = images.write_oci_layout(tmp_path / "layout", image, "1")
        ref = f"127.0.0.1:{web_port}/alice/deploy-test:1"
        creds = f"alice:{PASSWORD}"
        clients.skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:1", f"docker://{ref}")
        pulled = tmp_path / "pulled"
        clients.skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, f"docker://{ref}", f"dir:{pulled}")
        manifest, blobs = images.read_dir_layout(pulled)
        assert manifest == image.manifest
        assert blobs == {blob.digest: blob.data for blob in image.blobs}

        # The websocket role: Daphne with the build manager, refusing a wrong secret.
        podman(*RUN, "-d", "--name", names["ws"], *common, SERVER_IMAGE, "ws")

        def refused() -> bool:
            with connect(f"ws://127.0.0.1:{ws_port}/ws/builder/", open_timeout=5) as ws:
                ws.send(json.dumps({"type": "register", "secret": "wrong", "host": "t", "version": "1.0.0",
                                    "capacity": 1, "engine": "buildah"}))  # fmt: skip
                # "refused", then the close (4003); under load the close may overtake the message.
                try:
                    assert json.loads(ws.recv(timeout=10))["type"] == "refused"
                    ws.recv(timeout=10)
                except ConnectionClosed:
                    pass
                return ws.close_code == 4003

        _wait_for(refused, "the build manager answering", names["ws"])

        # The worker role: a Celery worker on the embedded filesystem broker.
        podman(*RUN, "-d", "--name", names["worker"], *common, SERVER_IMAGE, "worker", "--concurrency=1")
        def worker_ready() -> bool:
            logs = podman("logs", names["worker"])
            return " ready." in logs.stdout + logs.stderr

        _wait_for(worker_ready, "the worker being ready", names["worker"])
    finally:
        for name in names.values():
            podman("rm", "--force", "--time", "5", name, check=False)


def _check_builder_image():
    script = "quay-builder --help && buildah --version"
    usage = podman(*RUN, "--rm", "--entrypoint", "/bin/sh", BUILDER_IMAGE, "-c", script)
    assert "usage: quay-builder" in usage.stdout
    assert "buildah version" in usage.stdout
    # The image's own entry point runs the worker, which wants its server first.
    bare = podman(*RUN, "--rm", BUILDER_IMAGE, check=False)
    assert bare.returncode == 2
    assert "SERVER (or --server) is required" in bare.stderr
