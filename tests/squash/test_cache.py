"""The squash cache against a live server (gunicorn, two worker processes, its own SQLite file or
PostgreSQL database): concurrent first downloads share one flattening, a second download is served
from the cache with its Content-Length, a killed flattening is taken over, garbage collection
removes the tarballs of collected manifests, the cache stays under its size bound (least recently
used out), and the tarball loads into podman and runs."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import requests

from tests.e2e import images
from tests.e2e.conftest import (
    BASE_DIR,
    PASSWORD,
    LiveRegistry,
    clients,  # noqa: F401 (the podman/skopeo fixture)
    live_server,
)

pytestmark = pytest.mark.e2e

# Room for three of the LRU test's tarballs (each about 118 KiB), not four.
CACHE_BYTES = 400 * 1024
RUN_FLAGS = ("--rm", "--network", "none", "--runtime", "runc", "--ulimit", "nofile=1024:1024")
RUN_FLAGS += ("--ulimit", "nproc=4096:4096")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from live_server(
        tmp_path_factory,
        "squash",
        LiveRegistry,
        GC_GRACE_SECONDS="0",
        SQUASH_CACHE_MAX_BYTES=str(CACHE_BYTES),
    )


def push(server: LiveRegistry, repo: str, image: images.HandImage, tag: str) -> None:
    """Push an image over /v2/ as alice (monolithic blob uploads, then the manifest)."""
    token = server.token(f"repository:{repo}:pull,push", username="alice", password=PASSWORD)
    headers = {"Authorization": f"Bearer {token}"}
    for blob in image.blobs:
        response = requests.post(
            f"{server.url}/v2/{repo}/blobs/uploads/",
            params={"digest": blob.digest},
            data=blob.data,
            headers={**headers, "Content-Type": "application/octet-stream"},
            timeout=60,
        )
        assert response.status_code == 201, response.text
    response = requests.put(
        f"{server.url}/v2/{repo}/manifests/{tag}",
        data=image.manifest,
        headers={**headers, "Content-Type": image.media_type},
        timeout=60,
    )
    assert response.status_code == 201, response.text


def squash_url(server: LiveRegistry, repo: str, tag: str) -> str:
    return f"{server.url}/c1/squash/{repo}/{tag}"


def download(server: LiveRegistry, repo: str, tag: str, **kw) -> requests.Response:
    response = requests.get(squash_url(server, repo, tag), auth=("alice", PASSWORD), timeout=120, **kw)
    assert response.status_code == 200, response.text
    return response


def rows(server: LiveRegistry, repo: str) -> list[dict]:
    """The squash rows of a repository of the live server, read in its own environment."""
    ns, name = repo.split("/", 1)
    out = server.shell(
        "import json\n"
        "from squash.models import SquashedImage\n"
        f"rows = SquashedImage.objects.filter(repository__namespace__name={ns!r}, repository__name={name!r})"
        ".order_by('pk').values('tag', 'state', 'size', 'sha256', 'storage_name', 'flattenings', 'manifest__digest')\n"
        "print('ROWS ' + json.dumps(list(rows)))"
    )
    return json.loads(next(line[5:] for line in out.splitlines() if line.startswith("ROWS ")))


def stored(server: LiveRegistry, storage_name: str) -> Path:
    return server.data_dir / "storage" / storage_name


def layer_of(tarball: bytes) -> dict[str, bytes]:
    """Regular files of the single layer in a docker-archive, by path."""
    outer = tarfile.open(fileobj=io.BytesIO(tarball))
    manifest = json.loads(outer.extractfile("manifest.json").read())
    (layer_name,) = manifest[0]["Layers"]
    inner = tarfile.open(fileobj=outer.extractfile(layer_name))
    return {m.name.removeprefix("./"): inner.extractfile(m).read() for m in inner.getmembers() if m.isfile()}


def fresh_image(layers: int = 2, layer_bytes: int = 48 * 1024) -> images.HandImage:
    return images.hand_image(layer_count=layers, layer_bytes=layer_bytes)


def test_concurrent_first_downloads_share_one_flattening(server):
    repo = "alice/public-images"
    image = fresh_image(layers=3, layer_bytes=4 * 1024 * 1024)
    push(server, repo, image, "shared")
    start = threading.Barrier(4)
    results: list[tuple[int, str, bytes, str]] = []

    def fetch():
        start.wait()
        response = requests.get(squash_url(server, repo, "shared"), timeout=120)
        cache = response.headers.get("X-Squash-Cache")
        results.append((response.status_code, response.headers.get("Content-Length"), response.content, cache))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, *_ in results] == [200] * 4
    bodies = {body for _, _, body, _ in results}
    assert len(bodies) == 1, "every download got the same tarball"
    body = bodies.pop()
    assert {int(length) for _, length, _, _ in results} == {len(body)}
    assert layer_of(body) == image.files
    (row,) = rows(server, repo)
    assert row["flattenings"] == 1, "four concurrent first downloads, one flattening"
    assert row["state"] == "ready" and row["size"] == len(body)
    assert row["sha256"] == hashlib.sha256(body).hexdigest()
    assert stored(server, row["storage_name"]).read_bytes() == body


def test_a_second_download_is_served_from_the_cache(server):
    repo = "alice/private-images"
    image = fresh_image()
    push(server, repo, image, "cached")
    first = download(server, repo, "cached")
    assert first.headers["X-Squash-Cache"] == "miss"
    second = download(server, repo, "cached")
    assert second.headers["X-Squash-Cache"] == "hit"
    assert second.headers["Content-Length"] == str(len(first.content))
    assert second.content == first.content
    (row,) = [r for r in rows(server, repo) if r["tag"] == "cached"]
    assert row["flattenings"] == 1


KILLED_FLATTENING = """
import os, signal
from registry import selectors as registry_selectors
from squash import selectors, services
repository = registry_selectors.repository_by_name("alice/private-images")
tag = registry_selectors.tag_alive(repository=repository, name="killed")
target = selectors.squash_target(repository=repository, tag=tag, host=HOST, platform=None)
streaming = services.squash_open(target=target)
next(iter(streaming))
print("FLATTENING", streaming.row_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_flattening_does_not_block_the_next_download(server):
    repo = "alice/private-images"
    # Big enough (48 MiB of random data) that the flattening is still running at the kill.
    image = fresh_image(layers=2, layer_bytes=24 * 1024 * 1024)
    push(server, repo, image, "killed")
    # A process starts flattening (through the same services as the web process) and is
    # killed with SIGKILL after its first bytes: its row stays "building" with a fresh heartbeat.
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", f"HOST = {server.host!r}\n" + KILLED_FLATTENING],
        env=server.env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -9 and "FLATTENING" in result.stdout, result.stdout + result.stderr
    (row,) = [r for r in rows(server, repo) if r["tag"] == "killed"]
    assert row["state"] == "building" and row["flattenings"] == 1
    # Its part file is no longer locked: the next download takes the row over at once.
    response = download(server, repo, "killed")
    assert response.headers["X-Squash-Cache"] == "miss"
    assert layer_of(response.content) == image.files
    (row,) = [r for r in rows(server, repo) if r["tag"] == "killed"]
    assert row["state"] == "ready" and row["flattenings"] == 2


def test_garbage_collection_removes_the_squashes_of_collected_manifests(server):
    repo = "alice/private-images"
    push(server, repo, fresh_image(), "collected")
    download(server, repo, "collected")
    (row,) = [r for r in rows(server, repo) if r["tag"] == "collected"]
    path = stored(server, row["storage_name"])
    assert path.exists()
    # No time machine: the deleted tag's manifest is collectable at once (GC_GRACE_SECONDS=0).
    server.shell(
        "from accounts.models import Namespace\nNamespace.objects.filter(name='alice').update(time_machine_seconds=0)"
    )
    token = server.token(f"repository:{repo}:pull,push,delete", username="alice", password=PASSWORD)
    response = requests.delete(
        f"{server.url}/v2/{repo}/manifests/collected", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 202, response.text
    server.manage("gc")
    assert [r for r in rows(server, repo) if r["tag"] == "collected"] == []
    assert not path.exists()


def test_the_cache_keeps_under_its_bound_least_recently_used_out(server):
    repo = "alice/public-images"
    names = ("lru-a", "lru-b", "lru-c", "lru-d")
    for name in names:
        push(server, repo, fresh_image(layers=1, layer_bytes=100 * 1024), name)
    # Whatever earlier tests cached goes first; then a, b, c fit, and a is used again.
    for name in names[:3]:
        download(server, repo, name)
    assert download(server, repo, "lru-a").headers["X-Squash-Cache"] == "hit"
    download(server, repo, "lru-d")
    cached = {r["tag"]: r for r in rows(server, repo) if r["tag"].startswith("lru-")}
    assert set(cached) == {"lru-a", "lru-c", "lru-d"}, "lru-b was the least recently used"
    assert sum(r["size"] for r in rows(server, repo)) <= CACHE_BYTES
    assert all(stored(server, r["storage_name"]).exists() for r in cached.values())
    # An evicted squash is made again on demand.
    assert download(server, repo, "lru-b").headers["X-Squash-Cache"] == "miss"


def two_layer_busybox(path: Path) -> Path:
    """busybox, plus a second layer (umoci) that adds /etc/squashed.txt and removes /bin/ls."""
    layout = images.busybox_layout(path)
    bundle = path.parent / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True)
    (bundle / "rootfs" / "etc").mkdir(exist_ok=True)
    (bundle / "rootfs" / "etc" / "squashed.txt").write_text("flattened by the registry\n")
    (bundle / "rootfs" / "bin" / "ls").unlink()
    subprocess.run(["umoci", "repack", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True)
    return layout


def test_the_tarball_piped_into_podman_load_runs(server, clients, tmp_path):  # noqa: F811
    layout = two_layer_busybox(tmp_path / "busybox")
    clients.skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"alice:{PASSWORD}",
        f"oci:{layout}:latest",
        f"docker://{server.host}/alice/private-images:busybox",
    )
    url = f"http://alice:{PASSWORD}@{server.host}/c1/squash/alice/private-images/busybox"
    curl = subprocess.Popen(["curl", "-sS", "-L", "-f", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # `curl | podman load`, with the flags of the suite's podman (private storage under its root).
    base = clients.root / "podman"
    podman = ["podman", *clients._storage("podman"), "--tmpdir", str(base / "tmp"), "--events-backend", "none"]
    loaded = subprocess.run(
        [*podman, "--cgroup-manager", "cgroupfs", "load"],
        stdin=curl.stdout,
        env=clients.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    curl.stdout.close()
    assert curl.wait(timeout=60) == 0, curl.stderr.read()
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    name = f"{server.host}/alice/private-images:busybox.squash"
    assert name in loaded.stdout
    inspect = json.loads(clients.podman("image", "inspect", name).stdout)[0]
    assert len(inspect["RootFS"]["Layers"]) == 1
    assert inspect["Config"]["Cmd"] == ["/bin/sh"]
    run = clients.podman(
        "run", *RUN_FLAGS, name, "sh", "-c", "cat /etc/squashed.txt; test -e /bin/ls || echo ls removed"
    )
    assert run.stdout == "flattened by the registry\nls removed\n"
