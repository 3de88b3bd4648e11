"""Crash safety (issue #13, "Faults"): processes SIGKILLed at the steps that matter, storage
failing mid-write, the database dropping connections or staying locked.

After each fault, four things hold: no client saw success for something that was not stored;
whatever the registry lists pulls whole (each tag's manifest and blobs, digests checked); the
work done again completes; and garbage collection (GC_GRACE_SECONDS=0) takes what was left (or,
for bytes published just before a crash, which no row names, ``manage.py storage_check --repair``).

The narrow windows are reached with pause points (quay_site/faults.py, inert outside tests);
the wide ones (a body streaming in, a flattening under way) by watching the bytes arrive.
Background work (a delivery, a dispatch) runs in a ``manage.py shell`` process of its own, which
the test kills. Deliveries are at least once: a worker killed after the receiver answered but
before the outcome was recorded makes the receiver see the same delivery id twice.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e import images
from tests.faults.conftest import BASE_DIR, MIB, PASSWORD, FaultServer, age, serve, sha256
from tests.notifications.receivers import Receiver
from tests.storage.conftest import (  # noqa: F401 (moto_endpoint: the moto S3 server fixture)
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Bucket,
    moto_endpoint,
    wait_for,
)

pytestmark = pytest.mark.e2e


class Background:
    """``call()`` in a thread; ``outcome()`` is what it returned or the exception it raised."""

    def __init__(self, call: Callable):
        self._value = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call):
        try:
            self._value = call()
        except Exception as exc:  # the point: a killed server is a connection error
            self._value = exc

    def outcome(self, timeout: float = 60):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the request never ended"
        return self._value


def assert_failed(outcome) -> None:
    """The client was not told it succeeded: a connection error, or an error status."""
    if isinstance(outcome, requests.Response):
        assert outcome.status_code >= 500, (outcome.status_code, outcome.text)
    else:
        assert isinstance(outcome, requests.RequestException), repr(outcome)


def small_image() -> images.HandImage:
    return images.hand_image(layer_count=1, layer_bytes=8 * 1024)


def run_shell(server: FaultServer, code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR,
        env={**server.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_at(server: FaultServer, point: str, process: subprocess.Popen) -> None:
    """SIGKILL ``process`` once it waits at ``point``."""
    pid = server.wait_reached(point)
    assert pid == process.pid
    os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=15) == -signal.SIGKILL
    server.disarm(point)


# ---------------------------------------------------------------------------------------------
# SIGKILL


def test_sigkill_during_a_blob_upload(live):
    repo = "alice/upload-killed"
    kept = live.push(repo, small_image(), "kept")
    data = os.urandom(6 * MIB)
    release = threading.Event()

    def body():  # streamed (chunked): the server writes it as it arrives
        for offset in range(0, len(data), 256 * 1024):
            if offset >= 3 * MIB:
                release.wait(30)
            yield data[offset : offset + 256 * 1024]

    headers = live.auth(repo)
    post = Background(
        lambda: requests.post(
            f"{live.url}/v2/{repo}/blobs/uploads/",
            params={"digest": sha256(data)},
            data=body(),
            headers={**headers, "Content-Type": "application/octet-stream"},
            timeout=60,
        )
    )
    wait_for(
        lambda: any(p.stat().st_size >= 2 * MIB for p in live.upload_files()),
        timeout=30,
        what="the upload to reach storage",
    )
    live.kill()
    release.set()
    assert_failed(post.outcome())

    live.start()
    (leftover,) = live.upload_files()
    assert leftover.name.startswith("mono-")
    assert live.head_blob(repo, sha256(data)) == 404
    assert sha256(data) not in live.blob_files()
    assert live.assert_intact(repo) == {"kept": kept.digest}

    # The client pushes again, and it goes through.
    assert live.upload(repo, data).status_code == 201
    image = live.push(repo, images.hand_image(layer_count=1, layer_bytes=4 * 1024), "again")
    assert live.assert_intact(repo) == {"kept": kept.digest, "again": image.digest}

    # The killed request's file: a pass leaves it while it could be a live upload, and takes
    # it once it is older than any upload can be (STRAY_UPLOAD_MIN_AGE).
    live.manage("gc")
    assert leftover.exists()
    age([leftover], hours=2)
    live.manage("gc")
    assert live.upload_files() == []
    assert live.assert_intact(repo) == {"kept": kept.digest, "again": image.digest}


def test_sigkill_at_the_finishing_put(live):
    """Killed after the blob's bytes were published and before its row was committed."""
    repo = "alice/put-killed"
    kept = live.push(repo, small_image(), "kept")
    data = os.urandom(512 * 1024)
    headers = live.auth(repo)
    response = requests.post(f"{live.url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=30)
    assert response.status_code == 202
    location = response.headers["Location"]
    response = requests.patch(
        f"{live.url}{location}", data=data, headers={**headers, "Content-Type": "application/octet-stream"}, timeout=30
    )
    assert response.status_code == 202
    session_id = location.rstrip("/").rsplit("/", 1)[1]

    live.arm("blob.record")
    put = Background(
        lambda: requests.put(f"{live.url}{location}", params={"digest": sha256(data)}, headers=headers, timeout=60)
    )
    live.wait_reached("blob.record")
    live.kill()
    assert_failed(put.outcome())
    live.disarm("blob.record")

    live.start()
    headers = live.auth(repo)
    # The bytes are in place, but no row names them: the blob does not exist for anyone.
    assert sha256(data) in live.blob_files()
    assert live.head_blob(repo, sha256(data)) == 404
    assert live.assert_intact(repo) == {"kept": kept.digest}
    # Finishing the same session again is a clear error (its bytes moved), never a success.
    response = requests.put(f"{live.url}{location}", params={"digest": sha256(data)}, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"

    # Bytes no row names are reclaimed by the storage check's repair (registry/consistency.py,
    # under the digest lock, once older than the grace period); garbage collection goes by rows.
    live.manage("gc")
    assert sha256(data) in live.blob_files()
    live.manage("storage_check", "--repair")
    assert sha256(data) not in live.blob_files()

    # The client starts the blob over, and it goes through.
    assert live.upload(repo, data, headers).status_code == 201
    pulled = requests.get(f"{live.url}/v2/{repo}/blobs/{sha256(data)}", headers=headers, timeout=30)
    assert pulled.status_code == 200 and sha256(pulled.content) == sha256(data)

    # The dead session goes once it expires (a day later), with nothing of it left.
    live.shell(
        "from datetime import timedelta\nfrom django.utils import timezone\n"
        "from registry.models import UploadSession\n"
        f"UploadSession.objects.filter(pk={session_id!r}).update(expires=timezone.now() - timedelta(seconds=1))"
    )
    live.manage("gc")
    left = live.shell_json(
        f"import json\nfrom registry.models import UploadSession\n"
        f"print('OUT ' + json.dumps(UploadSession.objects.filter(pk={session_id!r}).count()))"
    )
    assert left == 0
    assert live.upload_files() == []
    assert live.assert_intact(repo) == {"kept": kept.digest}


def test_sigkill_during_a_manifest_put(live):
    """Killed after the manifest row was written and before the tag row was."""
    repo = "alice/manifest-killed"
    old = live.push(repo, small_image(), "latest")
    new = small_image()
    headers = live.auth(repo)
    for blob in new.blobs:
        assert live.upload(repo, blob.data, headers).status_code == 201

    live.arm("manifest.stored")
    put = Background(lambda: live.put_manifest(repo, new, "latest", headers))
    live.wait_reached("manifest.stored")
    live.kill()
    assert_failed(put.outcome())
    live.disarm("manifest.stored")

    live.start()
    # All or nothing: no manifest row, the tag where it was.
    assert live.assert_intact(repo) == {"latest": old.digest}
    response = requests.get(f"{live.url}/v2/{repo}/manifests/{new.digest}", headers=live.auth(repo), timeout=30)
    assert response.status_code == 404

    assert live.put_manifest(repo, new, "latest").status_code == 201
    assert live.assert_intact(repo) == {"latest": new.digest}
    # The old image is what the move left behind: a pass takes it, and only it.
    live.manage("gc")
    assert not {blob.digest for blob in old.blobs} & live.blob_files()
    assert live.assert_intact(repo) == {"latest": new.digest}


def test_sigkill_during_a_tag_move(live):
    """A REST API move killed after the old row was ended and before the new one was inserted."""
    repo = "alice/tag-killed"
    first = live.push(repo, small_image(), "stable")
    second = live.push(repo, small_image(), "next")
    api = {"Authorization": f"Bearer {live.seed['oauth_token']}"}

    def move():
        return requests.put(
            f"{live.url}/api/v1/repository/{repo}/tag/stable",
            json={"manifest_digest": second.digest},
            headers=api,
            timeout=60,
        )

    live.arm("tag.ended")
    request = Background(move)
    live.wait_reached("tag.ended")
    live.kill()
    assert_failed(request.outcome())
    live.disarm("tag.ended")

    live.start()
    assert live.assert_intact(repo) == {"stable": first.digest, "next": second.digest}
    alive = live.shell_json(
        "import json\nfrom registry.models import Tag\n"
        "rows = Tag.objects.filter(repository__name='tag-killed', name='stable', lifetime_end__isnull=True)\n"
        "print('OUT ' + json.dumps(list(rows.values_list('manifest__digest', flat=True))))"
    )
    assert alive == [first.digest]  # one alive row, the old one

    response = move()
    assert response.status_code == 201, response.text
    assert live.assert_intact(repo) == {"stable": second.digest, "next": second.digest}
    live.manage("gc")
    assert not {blob.digest for blob in first.blobs} & live.blob_files()
    assert live.assert_intact(repo) == {"stable": second.digest, "next": second.digest}


DELIVERY_SETUP = """
import json
from accounts.models import User
from notifications import services
from notifications.models import Delivery
from registry import selectors
from registry.permissions import Principal
repository = selectors.repository_by_name("alice/hooked")
alice = User.objects.get(username="alice")
services.notification_create(
    repository=repository, event="repo_push", method="webhook", config={"url": URL}, event_config={},
    title="crash test", principal=Principal(kind="user", user=alice), ip=None,
)
"""

DELIVERY_ROWS = """
import json
from notifications.models import Delivery, DeliveryAttempt
rows = [
    {"id": d.pk, "uuid": str(d.uuid), "state": d.state, "attempts": d.attempts,
     "log": list(DeliveryAttempt.objects.filter(delivery=d).order_by("number").values_list("number", "success"))}
    for d in Delivery.objects.filter(notification__repository__name="hooked").order_by("pk")
]
print("OUT " + json.dumps(rows))
"""

# Delivery settings of the worker processes: a short lease, so the takeover is quick.
DELIVERY_ENV = {"OUTBOUND_TIMEOUT_SECONDS": "1", "NOTIFICATION_LEASE_SECONDS": "2", "NOTIFICATION_DRAIN_SECONDS": "0"}


def test_sigkill_during_a_delivery(live):
    """A worker killed after the receiver answered 200 and before the outcome was recorded."""
    receiver = Receiver()
    try:
        repo = "alice/hooked"
        live.push(repo, small_image(), "before")
        live.shell(f"URL = {receiver.url()!r}\n" + DELIVERY_SETUP)
        image = live.push(repo, small_image(), "v1")
        (row,) = live.shell_json(DELIVERY_ROWS)
        assert row["state"] == "pending" and row["attempts"] == 0

        live.arm("delivery.sent")
        attempt = f"from notifications import services\nservices.delivery_attempt(delivery_id={row['id']})"
        worker = run_shell(live, attempt, **DELIVERY_ENV)
        kill_at(live, "delivery.sent", worker)
        (first,) = receiver.wait_for(1)
        assert first.headers["webhook-id"] == row["uuid"]
        assert first.json()["updated_tags"] == ["v1"]
        (row,) = live.shell_json(DELIVERY_ROWS)
        assert row["state"] == "sending" and row["log"] == []  # not recorded as delivered

        # A new worker finds the lapsed lease and sends it again, with the same id.
        time.sleep(2.5)
        again = live.shell(
            f"from notifications import services\nprint('STATE', services.delivery_attempt(delivery_id={row['id']}))",
            **DELIVERY_ENV,
        )
        assert "STATE delivered" in again
        second = receiver.wait_for(2)[1]
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        assert second.body == first.body  # a duplicate the receiver can recognize by its id
        (row,) = live.shell_json(DELIVERY_ROWS)
        assert row["state"] == "delivered" and row["log"] == [[1, False], [2, True]]
        assert live.assert_intact(repo) == {"before": live.tag_digest(repo, "before"), "v1": image.digest}
    finally:
        receiver.stop()


SQUASH_ROWS = """
import json
from squash.models import SquashedImage
rows = SquashedImage.objects.filter(repository__name="squash-killed").order_by("pk")
print("OUT " + json.dumps(list(rows.values("state", "storage_name", "flattenings"))))
"""


def test_sigkill_during_a_squash(live):
    repo = "alice/squash-killed"
    image = live.push(repo, images.hand_image(layer_count=2, layer_bytes=512 * 1024), "latest")
    parts = live.storage / "squash" / "parts"

    def download():
        return requests.get(f"{live.url}/c1/squash/{repo}/latest", auth=("alice", PASSWORD), timeout=120)

    live.arm("squash.writing")
    killed = Background(download)
    live.wait_reached("squash.writing")
    live.kill()
    assert_failed(killed.outcome())  # cut short: never a whole tarball
    live.disarm("squash.writing")
    (part,) = list(parts.iterdir())  # what the killed flattening left
    assert part.name.endswith(".part")

    live.start()
    (row,) = live.shell_json(SQUASH_ROWS)
    assert row["state"] == "building" and row["flattenings"] == 1
    # Before anyone asks again, the killed flattening's part file is GC's once it is stale
    # (SQUASH_STALE_SECONDS: 2 on this server).
    time.sleep(2.5)
    live.manage("gc")
    assert list(parts.iterdir()) == []
    # The dead flattening holds no lock: the next download takes the row over and completes.
    response = download()
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    (row,) = live.shell_json(SQUASH_ROWS)
    assert row["state"] == "ready" and row["flattenings"] == 2
    assert (live.storage / row["storage_name"]).read_bytes() == response.content
    assert list(parts.iterdir()) == []
    assert live.assert_intact(repo) == {"latest": image.digest}


BUILD_SETUP = """
import json
from django.utils import timezone
from builds.models import Build, BuildWorker
from registry import selectors
repository = selectors.repository_by_name("alice/built")
build = Build.objects.create(
    repository=repository, namespace_id_cached=repository.namespace_id, source=Build.Source.DOCKERFILE, tags=["x"]
)
worker = BuildWorker.objects.create(host="w", capacity=1, last_heartbeat=timezone.now())
print("OUT " + json.dumps([build.pk, worker.pk]))
"""

BUILD_ROWS = """
import json
from builds.models import Build
build = Build.objects.get(pk=BUILD)
print("OUT " + json.dumps({"phase": build.phase, "worker": build.worker_id, "attempts": build.attempts}))
"""

DISPATCH = (
    "from builds import manager\nprint('ASSIGNED', [(a.build.pk, a.worker.pk) for a in manager.dispatch_pending()])"
)


def test_sigkill_at_a_build_dispatch(live):
    live.push("alice/built", small_image(), "base")
    build, worker = live.shell_json(BUILD_SETUP)

    live.arm("build.claimed")
    dispatcher = run_shell(live, DISPATCH)
    kill_at(live, "build.claimed", dispatcher)
    # The claim died with its transaction: the build is still waiting, with no attempt used.
    state = live.shell_json(f"BUILD = {build}\n" + BUILD_ROWS)
    assert state == {"phase": "waiting", "worker": None, "attempts": 0}

    assert f"ASSIGNED [({build}, {worker})]" in live.shell(DISPATCH)
    state = live.shell_json(f"BUILD = {build}\n" + BUILD_ROWS)
    assert state == {"phase": "build-scheduled", "worker": worker, "attempts": 1}
    # A dispatcher killed after its commit leaves a build its worker may never hear of (the
    # wake-up went with the process); if the worker stays silent, the sweeper takes it back.
    requeued = live.shell(
        "from datetime import timedelta\nfrom django.utils import timezone\nfrom builds import manager\n"
        "print('SWEEP', manager.builds_sweep(now=timezone.now() + timedelta(hours=1))['requeued'])"
    )
    assert "SWEEP 1" in requeued
    state = live.shell_json(f"BUILD = {build}\n" + BUILD_ROWS)
    assert state == {"phase": "waiting", "worker": None, "attempts": 1}


# ---------------------------------------------------------------------------------------------
# Storage failing mid-write


@pytest.fixture
def small_disk():
    """An 8 MiB tmpfs (mounting needs root, as CI runs): writes past it fail with ENOSPC."""
    mount = Path(tempfile.mkdtemp(prefix="quay-faults-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(disk: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the disk with a file of the test's."""
    ballast = disk / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\1" * (shutil.disk_usage(disk).free - leave))
    return ballast


def test_a_full_disk_during_blob_uploads(tmp_path_factory, small_disk):
    servers = serve(tmp_path_factory, "disk", STORAGE_DIR=str(small_disk))
    server = next(servers)
    try:
        repo = "alice/full"
        kept = server.push(repo, small_image(), "kept")
        ballast = fill(small_disk, leave=512 * 1024)
        free = shutil.disk_usage(small_disk).free
        data = os.urandom(3 * MIB)
        headers = server.auth(repo)

        # Monolithic uploads run out of space: a clear error, nothing stored or left. The first
        # is read in one piece of which the disk takes only part: a short write, not a success.
        for blob in (os.urandom(free + 1000), data):
            response = server.upload(repo, blob, headers)
            assert response.status_code == 503, response.text
            assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
            assert server.head_blob(repo, sha256(blob)) == 404
            assert sha256(blob) not in server.blob_files()
            assert server.upload_files() == []

        # A chunk runs out of space: not committed, and its bytes give the space back.
        response = requests.post(f"{server.url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=30)
        assert response.status_code == 202
        location = f"{server.url}{response.headers['Location']}"
        chunk = {**headers, "Content-Type": "application/octet-stream"}
        response = requests.patch(location, data=data, headers=chunk, timeout=30)
        assert response.status_code == 503, response.text
        assert shutil.disk_usage(small_disk).free >= free - 64 * 1024

        # The server goes on serving: pulls, and pushes that fit.
        assert server.assert_intact(repo) == {"kept": kept.digest}
        small = server.push(repo, images.hand_image(layer_count=1, layer_bytes=16 * 1024), "small")

        # Space comes back: the same session continues from its committed offset (none) and
        # completes; the monolithic upload goes through too.
        ballast.unlink()
        response = requests.patch(location, data=data, headers={**chunk, "Content-Range": f"0-{len(data) - 1}"})
        assert response.status_code == 202, response.text
        response = requests.put(location, params={"digest": sha256(data)}, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        other = os.urandom(2 * MIB)
        assert server.upload(repo, other, headers).status_code == 201
        for blob in (data, other):
            pulled = requests.get(f"{server.url}/v2/{repo}/blobs/{sha256(blob)}", headers=headers, timeout=30)
            assert pulled.status_code == 200 and pulled.content == blob
        assert server.assert_intact(repo) == {"kept": kept.digest, "small": small.digest}
        server.manage("gc")  # the two blobs no manifest uses go
        assert not {sha256(data), sha256(other)} & server.blob_files()
        assert server.assert_intact(repo) == {"kept": kept.digest, "small": small.digest}
    finally:
        servers.close()


class FlakyS3:
    """An HTTP proxy in front of moto's S3 server that answers 500 on command: ``fail`` is how
    many requests to fail next (-1: all of them)."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.fail = 0
        self.failed = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                        if size == 0:
                            return bytes(out)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, headers: list, body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self):
                body = self._body()
                with proxy.lock:
                    failing = proxy.fail != 0
                    if failing:
                        proxy.failed += 1
                        proxy.fail -= proxy.fail > 0
                if failing:
                    error = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self._answer(500, [("Content-Type", "application/xml")], error)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    self._answer(response.status, response.getheaders(), response.read())
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_s3_answering_500(tmp_path_factory, moto_endpoint):  # noqa: F811
    bucket = S3Bucket(moto_endpoint, f"faults-{uuid.uuid4().hex[:12]}")
    bucket.client.create_bucket(Bucket=bucket.name)
    proxy = FlakyS3(moto_endpoint)
    servers = serve(
        tmp_path_factory,
        "s3",
        STORAGE_BACKEND="s3",
        S3_BUCKET=bucket.name,
        S3_ENDPOINT_URL=proxy.url,
        S3_REGION=REGION,
        S3_ACCESS_KEY_ID=ACCESS_KEY,
        S3_SECRET_ACCESS_KEY=SECRET_KEY,
        # boto3's standard retries, bounded so that a lasting failure is reported in seconds.
        AWS_RETRY_MODE="standard",
        AWS_MAX_ATTEMPTS="3",
    )
    server = next(servers)
    try:
        repo = "alice/s3"
        kept = server.push(repo, small_image(), "kept")
        image = small_image()
        headers = server.auth(repo)

        # S3 down: uploads fail with a clear error and store nothing; blob GETs are sent to the
        # bucket, which gives its own error. Manifests come from the database and still work.
        proxy.fail = -1
        response = server.upload(repo, image.layers[0].data, headers)
        assert response.status_code == 503, response.text
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert proxy.failed >= 3  # boto3 tried again before giving up
        layer = json.loads(kept.manifest)["layers"][0]["digest"]
        response = requests.get(f"{server.url}/v2/{repo}/blobs/{layer}", headers=headers, timeout=30)
        assert response.status_code == 500  # S3's answer, after the registry's redirect
        assert server.tag_digest(repo, "kept") == kept.digest
        assert server.head_blob(repo, image.layers[0].digest) == 404

        # S3 back: the same push goes through, everything pulls.
        proxy.fail = 0
        server.push(repo, image, "after")
        assert server.assert_intact(repo) == {"kept": kept.digest, "after": image.digest}

        # A passing error is absorbed by boto3's retries: the client never sees it.
        failed = proxy.failed
        proxy.fail = 1
        again = server.push(repo, small_image(), "retried")
        assert proxy.failed == failed + 1
        assert server.assert_intact(repo) == {"kept": kept.digest, "after": image.digest, "retried": again.digest}
        assert bucket.keys("uploads/") == []
        stored = {f"sha256:{key.rsplit('/', 1)[1]}" for key in bucket.keys("blobs/")}
        assert {blob.digest for blob in [*kept.blobs, *image.blobs, *again.blobs]} <= stored
    finally:
        servers.close()
        proxy.stop()


# ---------------------------------------------------------------------------------------------
# The database dropping connections, or locked


def try_push(server: FaultServer, repo: str, image: images.HandImage, tag: str, statuses: list) -> bool:
    """Push without asserting: True only when the registry answered 201 to the manifest."""
    try:
        headers = server.auth(repo)
        for blob in image.blobs:
            response = server.upload(repo, blob.data, headers)
            statuses.append(response.status_code)
            if response.status_code != 201:
                return False
        response = server.put_manifest(repo, image, tag, headers)
        statuses.append(response.status_code)
        return response.status_code == 201
    except (AssertionError, requests.RequestException) as exc:  # the token endpoint failed, or the socket
        statuses.append(type(exc).__name__)
        return False


# PostgreSQL in either configuration (its own when the suite runs on SQLite): run once.
@pytest.mark.config_independent
def test_database_dropping_connections_during_a_push_burst(tmp_path_factory, postgres_base):
    import psycopg2

    base = urlsplit(postgres_base)
    admin = psycopg2.connect(
        dbname="postgres", user=base.username, password=base.password, host=base.hostname, port=base.port
    )
    admin.autocommit = True
    servers = serve(tmp_path_factory, "pg", kind=postgres_base)
    try:
        server = next(servers)
        repo = "alice/burst"
        url = urlsplit(server.env["DATABASE_URL"])

        def drop_connections() -> int:
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [url.path.lstrip("/")],
                )
                return cursor.fetchone()[0]

        # One connection dropped in the middle of a manifest PUT's transaction, for certain.
        first = server.push(repo, small_image(), "first")
        dropped = small_image()
        headers = server.auth(repo)
        for blob in dropped.blobs:
            assert server.upload(repo, blob.data, headers).status_code == 201
        server.arm("manifest.stored")
        put = Background(lambda: server.put_manifest(repo, dropped, "dropped", headers))
        server.wait_reached("manifest.stored")
        assert drop_connections() >= 1
        server.disarm("manifest.stored")
        response = put.outcome()
        assert response.status_code == 503, response.text
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert server.assert_intact(repo) == {"first": first.digest}
        assert server.put_manifest(repo, dropped, "dropped").status_code == 201

        # Then connections dropped every 150 ms under a burst of pushes.
        stop = threading.Event()
        terminated = []

        def keep_dropping():
            while not stop.wait(0.15):
                terminated.append(drop_connections())

        outcomes: dict[str, tuple[images.HandImage, bool]] = {}
        statuses: list = []

        def pusher(n: int):
            for i in range(5):
                image = small_image()
                outcomes[f"p{n}-{i}"] = (image, try_push(server, repo, image, f"p{n}-{i}", statuses))

        killer = threading.Thread(target=keep_dropping)
        killer.start()
        pushers = [threading.Thread(target=pusher, args=(n,)) for n in range(3)]
        for thread in pushers:
            thread.start()
        for thread in pushers:
            thread.join(120)
        stop.set()
        killer.join(30)
        assert sum(terminated) > 0
        # Errors are errors (503 UNAVAILABLE from /v2/, 500 from the token endpoint), never a
        # success for something missing: every push answered 201 is listed and pulls whole.
        assert set(statuses) <= {201, 500, 503, "AssertionError", "ConnectionError"}, statuses
        listed = server.assert_intact(repo)
        for tag, (image, ok) in outcomes.items():
            if ok:
                assert listed[tag] == image.digest
        # Once the connections stay up, whatever failed goes through when pushed again.
        for tag, (image, ok) in outcomes.items():
            if not ok:
                server.push(repo, image, tag)
        expected = {"first": first.digest, "dropped": dropped.digest}
        expected.update({tag: image.digest for tag, (image, _) in outcomes.items()})
        assert server.assert_intact(repo) == expected
        server.manage("gc")
        assert server.assert_intact(repo) == expected
    finally:
        servers.close()
        admin.close()


LOCK_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # the write lock, held until stdin closes
print("LOCKED", flush=True)
sys.stdin.read()
db.rollback()
"""


# SQLite in either configuration: run once.
@pytest.mark.config_independent
def test_a_locked_sqlite_database(tmp_path_factory):
    """SQLite's analogue of a dropped connection: a writer holding the lock past the busy timeout."""
    servers = serve(tmp_path_factory, "locked", kind="sqlite", SQLITE_BUSY_TIMEOUT_SECONDS="1")
    server = next(servers)
    try:
        repo = "alice/locked"
        kept = server.push(repo, small_image(), "kept")
        image = small_image()
        headers = server.auth(repo)
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(server.data_dir / "db.sqlite3")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "LOCKED"
            # Writes wait out the timeout, then fail clearly; nothing they began is visible.
            for blob in image.blobs:
                response = server.upload(repo, blob.data, headers)
                assert response.status_code == 503, response.text
                assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
                assert server.head_blob(repo, blob.digest) == 404
            # Reads go on (WAL: readers never wait for the writer).
            assert server.assert_intact(repo) == {"kept": kept.digest}
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
        # The lock is gone: the same push goes through.
        server.push(repo, image, "after")
        assert server.assert_intact(repo) == {"kept": kept.digest, "after": image.digest}
        server.manage("gc")
        assert server.assert_intact(repo) == {"kept": kept.digest, "after": image.digest}
        assert server.upload_files() == []
    finally:
        servers.close()
