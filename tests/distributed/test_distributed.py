"""Distributed mode, tested as a whole (README: Distributed mode).

On 127.0.0.1: PostgreSQL and Redis (``.ci/services.sh``, a private cluster whatever configuration
the suite itself runs in), moto's S3 server, and the registry's processes started one by one as on
separate machines, each with its own DATA_DIR: two web processes (gunicorn), the websocket process
(Daphne), two Celery workers, celery beat and a build worker (``python -m builder``, buildah).

The scenario, with real clients:

- a repo_push webhook to a local receiver, made through web A's API;
- busybox pushed with skopeo through web A, pulled through web B (the same digest), its blob GETs
  answered on both web processes with a 307 to a presigned URL of the bucket;
- a Dockerfile build (FROM that image, COPY and RUN) started through web B's API, run by the build
  worker, which pushes its result;
- meanwhile a burst of pushes through web A, each a repo_push; during it web A is SIGKILLed and
  started again (the clients retry what it cut off), then the Celery worker that is sending a
  delivery (the receiver holds that request) is SIGKILLed and started again;
- at the end: every push went through, the build completed, every tag's manifest and blobs are
  served by both web processes, and the receiver got every notification, each delivery id once,
  except the one the killed worker was sending: that one came again with the same id once its
  lease lapsed (receivers deduplicate by ``webhook-id``, as README tells them to).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tests.distributed.cluster import Installation, Services, tagged_json, wait_until
from tests.e2e import images
from tests.e2e.builds_support import Api, log_outline, pulled_files
from tests.e2e.conftest import PASSWORD, clients  # noqa: F401  (fixture)
from tests.notifications.receivers import Receiver, Reply

# Starts everything it needs itself, whatever the suite's DATABASE_URL says: CI runs it once.
pytestmark = [pytest.mark.e2e, pytest.mark.config_independent]

REPO = "acme/app"
BURST = 10
# Short leases and fast sweeps, so that what a killed worker held is taken up again within seconds.
FAST = {
    "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32",
    "OUTBOUND_TIMEOUT_SECONDS": "5",
    "NOTIFICATION_LEASE_SECONDS": "6",
    "NOTIFICATION_SWEEP_SECONDS": "1",
    "NOTIFICATION_RETRY_BASE_SECONDS": "0.5",
    "BUILD_SWEEP_SECONDS": "2",
    "BUILD_HEARTBEAT_TIMEOUT_SECONDS": "45",
    "GC_INTERVAL_SECONDS": "0",
}

SEED = """
import json
from accounts import scopes, services as accounts
from registry import services as registry
from registry.permissions import Principal

alice = accounts.user_create(username="alice", password=PASSWORD)
acme = accounts.organization_create(name="acme", creator=alice)
registry.repository_create(namespace=acme, name="app", principal=Principal(kind="user", user=alice))
_, token = accounts.oauth_token_create(user=alice, scopes=scopes.ALL)
print("SEED " + json.dumps({"token": token}))
"""


@pytest.fixture
def installation(tmp_path):
    # Not under pytest's temp directory: as root, PostgreSQL runs as `postgres`, which must reach
    # its data directory, and pytest's directories are private to their owner.
    services = Services(state_dir=Path(tempfile.gettempdir()) / f"qdist-{uuid.uuid4().hex[:12]}")
    # Short: buildah's run root lives under it.
    builder_dir = Path(tempfile.mkdtemp(prefix="qdb-"))
    installed = None
    started = time.monotonic()
    try:
        services.start(tmp_path)
        up = time.monotonic()
        installed = Installation(tmp_path / "machines", services, **FAST)
        installed.manage("migrate", "--noinput", "-v", "0")
        installed.seed = tagged_json(installed.shell(f"PASSWORD = {PASSWORD!r}\n" + SEED), "SEED")
        migrated = time.monotonic()
        installed.define(builder_dir)
        installed.start_all()
        print(
            f"\nservices {up - started:.1f}s, migrate+seed {migrated - up:.1f}s, "
            f"processes {time.monotonic() - migrated:.1f}s"
        )
        yield installed
    finally:
        if installed is not None:
            installed.stop_all()
        services.stop()
        shutil.rmtree(builder_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Clients


def push(clients, inst: Installation, web: str, layout: Path, tag: str, attempts: int = 8) -> tuple[str, int]:  # noqa: F811
    """skopeo copy of ``layout`` to ``tag`` through ``web``, retried (after the web process
    answers again) as a deployment pipeline would; returns the digest and the attempts it took."""
    digest_file = layout.parent / f"{layout.name}-{tag}.digest"
    for attempt in range(1, attempts + 1):
        result = clients.skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"alice:{PASSWORD}",
            "--digestfile",
            str(digest_file),
            f"oci:{layout}:latest",
            f"docker://{inst.host(web)}/{REPO}:{tag}",
            check=False,
        )
        if result.returncode == 0:
            return digest_file.read_text().strip(), attempt
        last = result.stderr
        wait_until(_web_answers(inst, web), timeout=90, what=f"{web} to answer again")
    raise AssertionError(f"push of {tag} failed {attempts} times; last:\n{last}")


def _web_answers(inst: Installation, web: str):
    def check():
        try:
            return requests.get(f"{inst.url(web)}/v2/", timeout=2).status_code == 401
        except (requests.ConnectionError, requests.Timeout):
            return False

    return check


def registry_token(inst: Installation, web: str) -> str:
    """A pull token for the repository, issued by ``web`` for the installation's service name."""
    response = requests.get(
        f"{inst.url(web)}/v2/auth",
        params={"service": inst.common["SERVER_HOSTNAME"], "scope": f"repository:{REPO}:pull"},
        auth=("alice", PASSWORD),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def check_served_by_both(inst: Installation, tag: str, tokens: dict[str, str], fetched: set[str]) -> str:
    """The tag's manifest is the same bytes on both web processes, and each of its blobs is a 307
    to a presigned URL of the bucket on both; each blob's bytes are fetched (once) and hashed."""
    manifests = {}
    for web, token in tokens.items():
        response = requests.get(
            f"{inst.url(web)}/v2/{REPO}/manifests/{tag}",
            headers={"Authorization": f"Bearer {token}", "Accept": f"{images.OCI_MANIFEST},{images.DOCKER_MANIFEST}"},
            timeout=30,
        )
        assert response.status_code == 200, (web, tag, response.text)
        manifests[web] = response.content
        assert response.headers["Docker-Content-Digest"] == images.sha256(response.content)
    assert len(set(manifests.values())) == 1, f"{tag}: the web processes serve different manifests"
    manifest = json.loads(manifests["web-a"])
    bucket_url = f"{inst.services.s3_endpoint}/{inst.services.bucket}/"
    for descriptor in [manifest["config"], *manifest["layers"]]:
        digest = descriptor["digest"]
        for web, token in tokens.items():
            response = requests.get(
                f"{inst.url(web)}/v2/{REPO}/blobs/{digest}",
                headers={"Authorization": f"Bearer {token}"},
                allow_redirects=False,
                timeout=30,
            )
            assert response.status_code == 307, (web, tag, digest, response.status_code, response.text[:300])
            location = response.headers["Location"]
            assert location.startswith(bucket_url) and "Signature=" in location, location
            if digest not in fetched:
                body = requests.get(location, timeout=60)
                assert body.status_code == 200, body.text[:300]
                assert "sha256:" + hashlib.sha256(body.content).hexdigest() == digest
                fetched.add(digest)
    return images.sha256(manifests["web-a"])


def worker_sending_to(inst: Installation, port: int) -> str | None:
    """The Celery worker (``worker-1`` or ``worker-2``) with a connection open to ``port`` on
    127.0.0.1 that stays open (a held request), from /proc: the kernel's view, not the worker's."""
    groups = {p.popen.pid: name for name, p in inst.processes.items() if name.startswith("worker-") and p.alive()}

    def open_sockets() -> set[str]:
        inodes = set()
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if state == "01" and remote == f"0100007F:{port:04X}":
                    inodes.add(f"socket:[{inode}]")
        return inodes

    # Answered requests close at once; only the held one stays open across these samples.
    held = open_sockets()
    for _ in range(3):
        time.sleep(0.4)
        held &= open_sockets()
    if not held:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            group = os.getpgid(int(entry.name))
            if group in groups and any(os.readlink(fd) in held for fd in (entry / "fd").iterdir()):
                return groups[group]
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return None


def tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def deliveries(api: Api, notification: str) -> list[dict]:
    response = api.request("GET", f"/repository/{REPO}/notification/{notification}/deliveries", params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body["additional"]
    return body["deliveries"]


# ---------------------------------------------------------------------------------------------


def test_distributed_mode_survives_a_web_and_a_worker_killed_mid_way(installation, clients, tmp_path):  # noqa: F811
    inst = installation
    started = time.monotonic()
    timeline = []

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:6.1f}s {what}")

    token = inst.seed["token"]
    api_a = Api(SimpleNamespace(url=inst.url("web-a")), token)
    api_b = Api(SimpleNamespace(url=inst.url("web-b")), token)
    receiver = Receiver()
    try:
        # A repo_push webhook, through web A.
        response = api_a.request(
            "POST",
            f"/repository/{REPO}/notification/",
            json={
                "event": "repo_push",
                "method": "webhook",
                "config": {"url": receiver.url("/push")},
                "eventConfig": {},
                "title": "distributed",
            },
        )
        assert response.status_code == 201, response.text
        notification = response.json()["uuid"]

        # Busybox pushed through web A, pulled through web B.
        busybox = images.busybox_layout(tmp_path / "busybox" / "layout")
        base_digest, _ = push(clients, inst, "web-a", busybox, "base")
        mark("base pushed through web A")
        inspected = clients.skopeo(
            "inspect",
            "--tls-verify=false",
            "--creds",
            f"alice:{PASSWORD}",
            f"docker://{inst.host('web-b')}/{REPO}:base",
        )
        assert json.loads(inspected.stdout)["Digest"] == base_digest
        pulled = tmp_path / "pulled-base"
        clients.skopeo(
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            f"alice:{PASSWORD}",
            f"docker://{inst.host('web-b')}/{REPO}:base",
            f"oci:{pulled}:base",
        )
        pulled_index, pulled_blobs = images.read_oci_layout(pulled)
        assert pulled_index["manifests"][0]["digest"] == base_digest
        assert all(images.sha256(data) == digest for digest, data in pulled_blobs.items())
        # A token web B issued is good on web A: one key, one service name.
        tokens = {"web-a": registry_token(inst, "web-b"), "web-b": registry_token(inst, "web-a")}
        fetched: set[str] = set()
        assert check_served_by_both(inst, "base", tokens, fetched) == base_digest
        mark("base pulled through web B; blobs 307 to the bucket on both")

        # A build through web B: the build worker (connected to the websocket process) runs it.
        dockerfile = (
            f"FROM {inst.host('web-b')}/{REPO}:base\n"
            "COPY hello.txt /hello.txt\n"
            "RUN cat /hello.txt > /built.txt && sleep 2\n"
        )
        archive = tar_gz({"Dockerfile": dockerfile.encode(), "hello.txt": b"hello from the build context\n"})
        build = api_b.start(REPO, file_id=api_b.upload(archive, "application/gzip"), docker_tags=["built"])
        mark(f"build {build['id']} started through web B ({build['phase']})")

        # A burst of pushes through web A; web A and then a Celery worker are killed during it.
        layouts = []
        for i in range(BURST):
            layouts.append(
                images.write_oci_layout(
                    tmp_path / "burst" / f"image-{i}", images.hand_image(layer_count=1, layer_bytes=64 * 1024)
                )
            )
        progress = threading.Condition()
        done: list[str] = []
        attempts: dict[str, int] = {}

        def push_one(i: int) -> str:
            digest, tries = push(clients, inst, "web-a", layouts[i], f"burst-{i}")
            with progress:
                done.append(f"burst-{i}")
                attempts[f"burst-{i}"] = tries
                progress.notify_all()
            return digest

        def wait_done(count: int) -> None:
            with progress:
                assert progress.wait_for(lambda: len(done) >= count, timeout=120), f"pushes done: {done}"

        def build_phase() -> str:
            return api_b.build(REPO, build["id"])["phase"]

        hold = threading.Event()
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(push_one, i) for i in range(BURST)]
            wait_done(3)
            inst.processes["web-a"].kill()
            mark(f"web A SIGKILLed after {len(done)} pushes; build {build_phase()}")
            inst.restart("web-a")
            mark("web A answers again")
            # The next delivery is held by the receiver: the Celery worker sending it is killed in
            # the middle of the attempt, and the delivery must come again from another.
            receiver.reply(Reply(hold=hold))
            sender = wait_until(
                lambda: not receiver.script and worker_sending_to(inst, receiver.port),
                timeout=60,
                what="a delivery in flight",
            )
            inst.processes[sender].kill()
            hold.set()
            mark(f"{sender} SIGKILLed mid-delivery after {len(done)} pushes; build {build_phase()}")
            inst.restart(sender)
            mark(f"{sender} ready again")
            burst_digests = {f"burst-{i}": future.result() for i, future in enumerate(futures)}
        mark(f"burst done; attempts per push: {attempts}")
        for i, layout in enumerate(layouts):
            index, _ = images.read_oci_layout(layout)
            assert burst_digests[f"burst-{i}"] == index["manifests"][0]["digest"]

        # The build completed and its image is pullable through web A.
        done_build = api_b.wait(REPO, build["id"], "complete", "error", "internalerror", timeout=180)
        assert done_build["phase"] == "complete", log_outline(api_b.logs(REPO, build["id"]))
        mark("build complete")
        (tmp_path / "built").mkdir()
        files = pulled_files(clients, None, f"{inst.host('web-a')}/{REPO}:built", tmp_path / "built")
        assert files["hello.txt"] == b"hello from the build context\n"
        assert files["built.txt"] == b"hello from the build context\n"
        assert "bin/busybox" in files

        # Every tag, manifest and blob is served by both web processes (blobs from the bucket).
        tokens = {"web-a": registry_token(inst, "web-b"), "web-b": registry_token(inst, "web-a")}
        tags = ["base", "built", *burst_digests]
        listed = requests.get(
            f"{inst.url('web-a')}/v2/{REPO}/tags/list",
            headers={"Authorization": f"Bearer {tokens['web-a']}"},
            timeout=30,
        )
        assert listed.status_code == 200, listed.text
        assert sorted(listed.json()["tags"]) == sorted(tags)
        for tag in tags:
            digest = check_served_by_both(inst, tag, tokens, fetched)
            if tag in burst_digests:
                assert digest == burst_digests[tag]
        mark("every tag and blob served by both web processes")

        # Every notification was delivered; each delivery id reached the receiver once.
        expected_tags = set(tags)

        def all_delivered():
            rows = deliveries(api_a, notification)
            received = {r.headers["webhook-id"] for r in receiver.requests}
            notified = {t for r in receiver.requests for t in r.json()["updated_tags"]}
            if rows and all(row["state"] == "delivered" for row in rows) and received == {row["id"] for row in rows}:
                return rows if notified >= expected_tags else None
            return None

        try:
            rows = wait_until(all_delivered, timeout=90, what="every notification to be delivered")
        except AssertionError:
            raise AssertionError(
                f"deliveries: {json.dumps(deliveries(api_a, notification), indent=1)}\n"
                f"received: {[r.headers['webhook-id'] for r in receiver.requests]}\n{inst.logs()}"
            ) from None
        mark(f"{len(rows)} notifications delivered")
        time.sleep(3)  # a few sweeps later, nothing is sent again
        counts = Counter(r.headers["webhook-id"] for r in receiver.requests)
        repeated = {delivery_id: n for delivery_id, n in counts.items() if n > 1}
        for delivery_id, n in repeated.items():
            # Only an attempt cut off by the killed worker may be sent again, with the same id.
            detail = api_a.request("GET", f"/repository/{REPO}/notification/{notification}/deliveries/{delivery_id}")
            log = detail.json()["attempt_log"]
            assert len(log) == n and not log[0]["success"] and log[-1]["success"], (delivery_id, log)
        unique = {r.headers["webhook-id"]: r for r in receiver.requests}.values()
        by_tag = Counter(t for r in unique for t in r.json()["updated_tags"])
        assert set(by_tag) == expected_tags
        assert len(rows) == sum(by_tag.values()) >= len(expected_tags)
        for request in receiver.requests:
            assert request.json()["docker_url"] == f"{inst.common['SERVER_HOSTNAME']}/{REPO}"
        mark(f"deliveries: {len(rows)}, sent twice: {repeated}")
        # The one the killed worker was sending, and only that one, came twice.
        assert len(repeated) == 1, repeated
    except BaseException:
        print("\n".join(timeline))
        print(inst.logs())
        raise
    finally:
        receiver.stop()
    print("\n".join(timeline))
    assert inst.processes["web-a"].starts == 2 and inst.processes[sender].starts == 2
    builder_log = inst.processes["builder"].log()
    assert "Traceback" not in builder_log, builder_log
