"""skopeo pushing to a live server while ``manage.py gc`` runs back to back with no grace period:
every image pulls back byte for byte, and a push the collector raced fails only with
MANIFEST_BLOB_UNKNOWN, which pushing again fixes."""

from __future__ import annotations

import re
import sys
import threading
import time

import pytest

from tests.e2e import images
from tests.e2e.conftest import BASE_DIR, PASSWORD, LiveRegistry, live_server, run

pytestmark = pytest.mark.e2e

ALICE = f"alice:{PASSWORD}"
MIN_IMAGES, MIN_PASSES = 6, 6
# Pushes go on until that many passes have run; a pass is a process start, slow on a busy machine
# (at load 15, 60 pushes saw only 5), so the bound is time, not a number of images.
PUSH_SECONDS = 300


@pytest.fixture(scope="module")
def gc_registry(tmp_path_factory):
    """A live server of its own: passes with no grace period would take what other tests'
    pushes leave unreferenced for a moment."""
    yield from live_server(tmp_path_factory, "gcrace", LiveRegistry, GC_GRACE_SECONDS="0")


def _push(clients, source, ref: str) -> None:
    """skopeo copy, again while the registry answers MANIFEST_BLOB_UNKNOWN."""
    for _ in range(10):
        result = clients.skopeo(
            "copy", "--dest-tls-verify=false", "--dest-creds", ALICE, f"dir:{source}", f"docker://{ref}", check=False
        )
        if result.returncode == 0:
            return
        assert re.search("manifest blob unknown", result.stderr, re.IGNORECASE), result.stderr
    pytest.fail(f"{ref} never got through")


def test_skopeo_pushes_survive_gc_running_back_to_back(gc_registry, clients, tmp_path):
    gc_registry.shell(
        "from accounts.models import Namespace; Namespace.objects.filter(name='alice').update(time_machine_seconds=0)"
    )
    stop, outputs = threading.Event(), []

    def collect():
        while not stop.is_set():
            outputs.append(run([sys.executable, "manage.py", "gc"], env=gc_registry.env, cwd=BASE_DIR, check=False))

    # Two collectors: more passes overlap the pushes, and passes overlap each other.
    collectors = [threading.Thread(target=collect) for _ in range(2)]
    for collector in collectors:
        collector.start()
    pushed, count = {}, 0
    deadline = time.monotonic() + PUSH_SECONDS
    try:
        # Until several passes have run in between (a pass costs a process start), within limits.
        while count < MIN_IMAGES or (len(outputs) < MIN_PASSES and time.monotonic() < deadline):
            image = images.hand_image(layer_count=2, layer_bytes=16 * 1024)
            source = images.write_dir_layout(tmp_path / f"src{count}", image)
            # `latest` moves with every push: with no time machine the previous image is garbage.
            _push(clients, source, f"{gc_registry.host}/alice/gc:latest")
            pushed["latest"] = image
            if count % 2 == 0:
                # The same image again: every blob is there already (HEAD answers 200), so only
                # the manifest is sent.
                _push(clients, source, f"{gc_registry.host}/alice/gc:keep{count}")
                pushed[f"keep{count}"] = image
            count += 1
    finally:
        stop.set()
        for collector in collectors:
            collector.join(120)

    assert len(outputs) >= MIN_PASSES
    for output in outputs:
        assert output.returncode == 0, output.stdout + output.stderr
    final = gc_registry.manage("gc")
    deleted = sum(
        int(re.search(r"manifests deleted:\s+(\d+)", out).group(1)) for out in [o.stdout for o in outputs] + [final]
    )
    # The odd images were only ever `latest`, which moved on from all but the last one.
    assert deleted == len([i for i in range(count) if i % 2 == 1 and i != count - 1])
    for tag, image in pushed.items():
        manifest, blobs = images.read_dir_layout(_pull(clients, gc_registry, tag, tmp_path / f"pulled-{tag}"))
        assert manifest == image.manifest, tag
        assert blobs == {blob.digest: blob.data for blob in image.blobs}, tag


def _pull(clients, registry, tag: str, dest):
    source = f"docker://{registry.host}/alice/gc:{tag}"
    clients.skopeo("copy", "--src-tls-verify=false", "--src-creds", ALICE, source, f"dir:{dest}")
    return dest
