"""squash.tarball: the docker-archive around the flattened layer.

Its exact size before the first byte, the members and their order, the rewritten config, the
names; and the real check: `podman load` of the tarball, then a file read back with `podman run`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from squash.flatten import LayerSource, flatten
from squash.tarball import (
    LAYER_SLACK,
    SquashTooLarge,
    plan_squash,
    split_repo_tag,
    write_squash,
)
from tests.squash.images_support import Image, Layer, rules_layers, tar_contents

REPO_TAG = "registry.example:8443/acme/app:v1.squash"
RUN_FLAGS = (
    "--rm",
    "--network",
    "none",
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
)


def small_image() -> Image:
    bottom = Layer().dir("etc").file("etc/os-release", b"ID=test\n").file("old", b"old")
    top = Layer().whiteout(".wh.old").file("etc/motd", b"hello\n", mode=0o600)
    return Image([(bottom, "gzip"), (top, "zstd")])


def squash(image: Image, repo_tag: str = REPO_TAG, sizes=None):
    plan = plan_squash(
        layers=image.sources(),
        config=image.config,
        repo_tag=repo_tag,
        uncompressed_size_of=sizes or image.uncompressed_size_of,
    )
    out = io.BytesIO()
    result = write_squash(plan, out)
    return plan, result, out.getvalue()


def members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return [(m, archive.extractfile(m).read()) for m in archive.getmembers()]


def test_exact_size_and_hashes_known_as_planned():
    image = small_image()
    plan, result, data = squash(image)
    assert plan.layer_bytes == sum(len(tar) for tar in image.tars) + LAYER_SLACK
    assert len(data) == plan.total_size == result.size
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    # Planning decompressed nothing: it only asked for sizes. Writing twice gives the same bytes.
    assert squash(image)[2] == data


def test_members_in_streaming_order():
    plan, result, data = squash(small_image())
    entries = members(data)
    names = [info.name for info, _ in entries]
    layer_id = names[0].split("/")[0]
    assert len(layer_id) == 64
    config_name = names[3]
    assert names == [
        f"{layer_id}/layer.tar",
        f"{layer_id}/json",
        f"{layer_id}/VERSION",
        config_name,
        "manifest.json",
        "repositories",
    ]
    layer = entries[0][1]
    assert len(layer) == plan.layer_bytes
    assert result.layer_diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()
    assert tar_contents(layer) == {"etc/os-release": b"ID=test\n", "etc/motd": b"hello\n"}
    # The flattened tar, then zeros up to the declared size.
    flat = io.BytesIO()
    flatten(small_image().sources(), flat)
    assert layer[: len(flat.getvalue())] == flat.getvalue()
    assert layer[len(flat.getvalue()) :] == b"\0" * (plan.layer_bytes - len(flat.getvalue()))
    assert entries[2][1] == b"1.0"
    assert config_name == hashlib.sha256(entries[3][1]).hexdigest() + ".json"
    assert json.loads(entries[4][1]) == [
        {"Config": config_name, "RepoTags": [REPO_TAG], "Layers": [f"{layer_id}/layer.tar"]}
    ]
    assert json.loads(entries[5][1]) == {"registry.example:8443/acme/app": {"v1.squash": layer_id}}
    legacy = json.loads(entries[1][1])
    assert legacy["id"] == layer_id and legacy["config"]["Env"] == ["PATH=/bin"]


def test_config_rewritten_for_one_layer():
    image = small_image()
    _, result, data = squash(image)
    config = json.loads(members(data)[3][1])
    original = image.config
    assert config["rootfs"] == {"type": "layers", "diff_ids": [result.layer_diff_id]}
    assert len(config["history"]) == 1
    assert config["history"][0]["created"] == original["created"]
    assert "2 layers" in config["history"][0]["created_by"]
    assert "registry.example:8443" in config["history"][0]["comment"]
    for key in ("config", "architecture", "os", "created"):
        assert config[key] == original[key]


def test_header_goes_out_before_any_layer_is_read():
    image = small_image()
    out = io.BytesIO()
    seen_at_open = []
    sources = [
        LayerSource(s.digest, s.media_type, s.size, lambda s=s: (seen_at_open.append(out.tell()), s.open())[1])
        for s in image.sources()
    ]
    plan = plan_squash(layers=sources, config=image.config, repo_tag=REPO_TAG, uncompressed_size_of=lambda s: 10_240)
    write_squash(plan, out)
    assert seen_at_open[0] == 512  # the layer member's header, written before the first layer opened
    assert len(seen_at_open) == 2


def test_layer_id_depends_on_the_image():
    first = members(squash(small_image())[2])[0][0].name
    other = Image([(Layer().file("x", b"x"), "plain")])
    assert members(squash(other)[2])[0][0].name != first


def test_under_reported_sizes_raise_instead_of_writing_a_wrong_tarball():
    image = Image([(Layer().file("big", os.urandom(100_000)), "gzip")])
    with pytest.raises(SquashTooLarge):
        squash(image, sizes=lambda layer: 1024)


def test_repo_tag_split_keeps_a_port():
    assert split_repo_tag("host:5000/ns/repo:tag.squash") == ("host:5000/ns/repo", "tag.squash")
    assert split_repo_tag("host/ns/repo:latest.squash") == ("host/ns/repo", "latest.squash")


def test_huge_layer_header_is_readable():
    # A layer of 9 GiB does not fit ustar's size field: the plan must still be exact and readable.
    image = small_image()
    plan = plan_squash(
        layers=image.sources(), config=image.config, repo_tag=REPO_TAG, uncompressed_size_of=lambda s: 9 << 30
    )
    small = plan_squash(
        layers=image.sources(), config=image.config, repo_tag=REPO_TAG, uncompressed_size_of=lambda s: 1 << 20
    )
    assert plan.layer_bytes == 2 * (9 << 30) + LAYER_SLACK

    class Enough(Exception):
        pass

    class Head(io.BytesIO):
        """Keeps the start of the stream, then stops the (18 GiB) write."""

        def write(self, data):
            super().write(data)
            if self.tell() > 4096:
                raise Enough

    head = Head()
    with pytest.raises(Enough):
        write_squash(plan, head)
    info = tarfile.TarInfo.frombuf(head.getvalue()[:512], "utf-8", "strict")
    assert info.type == tarfile.XHDTYPE  # PAX carries the size
    with tarfile.open(fileobj=io.BytesIO(head.getvalue()[:1536] + b"\0" * 1024), mode="r|") as archive:
        assert next(iter(archive)).size == plan.layer_bytes
    # The PAX header is the only difference in the plan beyond the layer's own bytes.
    assert plan.total_size - plan.layer_bytes == small.total_size - small.layer_bytes + 1024


# ---------------------------------------------------------------------------------------------
# podman


@pytest.fixture(scope="module")
def podman():
    """podman with private storage (vfs) under a short temp path; nothing of the host's is used."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.fail("podman and runc are required (apt-get install podman runc)")
    root = Path(tempfile.mkdtemp(prefix="sq-podman-"))
    for name in ("tmp", "run", "config"):
        (root / name).mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(root / "tmp"),
        "HOME": str(root),
        "XDG_RUNTIME_DIR": str(root / "run"),
        "XDG_CONFIG_HOME": str(root / "config"),
    }
    flags = [
        "--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "vfs",
        "--tmpdir", str(root / "tmp"), "--events-backend", "none", "--cgroup-manager", "cgroupfs",
    ]  # fmt: skip

    def run(*args: str, stdin: bytes | None = None) -> str:
        result = subprocess.run(["podman", *flags, *args], env=env, input=stdin, capture_output=True, timeout=300)
        if result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr.decode()}")
        return result.stdout.decode()

    yield run
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.e2e
def test_podman_loads_the_tarball_and_runs_it(podman, tmp_path):
    image = Image([(layer, how) for layer, how in zip(rules_layers(), ("gzip", "zstd", "plain"), strict=True)])
    plan, result, data = squash(image)
    # Piped in, as `curl ... | docker load` does.
    loaded = podman("load", stdin=data)
    assert REPO_TAG in loaded
    inspect = json.loads(podman("image", "inspect", REPO_TAG))[0]
    assert inspect["RootFS"]["Layers"] == [result.layer_diff_id]
    assert inspect["Config"]["Env"] == ["PATH=/bin"] and inspect["Config"]["Cmd"] == ["/bin/sh"]
    assert inspect["Architecture"] == "amd64"
    # Files whose content only the flattening rules get right: materialized links, shadowing.
    out = podman("run", *RUN_FLAGS, REPO_TAG, "cat", "/hl-shadowed", "/l1-cross", "/shadow", "/base/t2", "/opq/new")
    assert out == "bottom shadow\nbottom t2\nmiddle shadow\ntop t2\nnew in opaque dir"
    # (The runtime mounts its own /dev, so device nodes are checked by the umoci comparison.)
    listing = podman("run", *RUN_FLAGS, REPO_TAG, "ls", "-a", "/", "/opq").split()
    assert "gone-file" not in listing and "gone-dir" not in listing and "hidden" not in listing
    assert "old1" not in listing and "cross-link" in listing and "xa" in listing


@pytest.mark.e2e
def test_podman_loads_from_a_file_too(podman, tmp_path):
    _, result, data = squash(small_image(), repo_tag="localhost/alice/small:latest.squash")
    path = tmp_path / "small.tar"
    path.write_bytes(data)
    assert "localhost/alice/small:latest.squash" in podman("load", "-i", str(path))
    assert json.loads(podman("image", "inspect", "localhost/alice/small:latest.squash"))[0]["RootFS"]["Layers"] == [
        result.layer_diff_id
    ]
