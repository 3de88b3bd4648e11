"""Test images made on the spot, nothing downloaded.

- ``busybox_layout``: a real, runnable image (busybox-static and applet links) packed by umoci
  into an OCI image layout.
- ``HandImage`` / ``write_oci_layout`` / ``write_dir_layout``: images written byte by byte
  (random file contents in gzip tar layers, a config, a Docker schema2 or OCI manifest), and a
  multi-architecture OCI index over such images. Their digests are known before any client
  touches them, so a push or pull can be checked for byte-exactness.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def tar_gz(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A gzip tar of ``files`` (path -> content) and its uncompressed tar (for the diff_id).

    Times and owners are fixed so equal contents give equal digests.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    uncompressed = raw.getvalue()
    return gzip.compress(uncompressed, compresslevel=1, mtime=0), uncompressed


@dataclass
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass
class HandImage:
    """One image manifest with its config and layers, all in memory."""

    manifest: bytes
    config: Blob
    layers: list[Blob]
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def media_type(self) -> str:
        return json.loads(self.manifest)["mediaType"]

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest), **extra}


def hand_image(
    *, docker: bool = False, arch: str = "amd64", layer_count: int = 2, layer_bytes: int = 32 * 1024
) -> HandImage:
    """An image whose layers each hold one file of fresh random bytes (so no two calls share blobs)."""
    layer_type, config_type, manifest_type = (
        (DOCKER_LAYER, DOCKER_CONFIG, DOCKER_MANIFEST) if docker else (OCI_LAYER, OCI_CONFIG, OCI_MANIFEST)
    )
    layers, diff_ids, files = [], [], {}
    for i in range(layer_count):
        name = f"data/layer{i}.bin"
        content = os.urandom(layer_bytes)
        compressed, uncompressed = tar_gz({name: content})
        layers.append(Blob(layer_type, compressed))
        diff_ids.append(sha256(uncompressed))
        files[name] = content
    config = Blob(
        config_type,
        canonical_json(
            {
                "architecture": arch,
                "os": "linux",
                "created": "2024-01-01T00:00:00Z",
                "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "tests/e2e/images.py"}] * layer_count,
            }
        ),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    # Indented on purpose: a registry that re-serializes the JSON would change the digest.
    raw = json.dumps(manifest, indent=3).encode()
    return HandImage(manifest=raw, config=config, layers=layers, files=files)


@dataclass
class HandIndex:
    """An OCI index over per-architecture images."""

    manifest: bytes
    children: dict[str, HandImage]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def multiarch_index(arches: tuple[str, ...] = ("amd64", "arm64")) -> HandIndex:
    children = {arch: hand_image(arch=arch, layer_count=1, layer_bytes=16 * 1024) for arch in arches}
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            image.descriptor(platform={"architecture": arch, "os": "linux"}) for arch, image in children.items()
        ],
    }
    return HandIndex(manifest=json.dumps(index, indent=2).encode(), children=children)


def _write_blob(blobs_dir: Path, data: bytes) -> None:
    path = blobs_dir / sha256(data).split(":", 1)[1]
    if not path.exists():
        path.write_bytes(data)


def write_oci_layout(path: Path, top: HandImage | HandIndex, tag: str = "latest") -> Path:
    """An OCI image layout holding ``top`` (an image or an index) under ``tag``: ``oci:<path>:<tag>``."""
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    images = list(top.children.values()) if isinstance(top, HandIndex) else [top]
    for image in images:
        for blob in image.blobs:
            _write_blob(blobs_dir, blob.data)
        _write_blob(blobs_dir, image.manifest)
    _write_blob(blobs_dir, top.manifest)
    media_type = OCI_INDEX if isinstance(top, HandIndex) else top.media_type
    descriptor = {
        "mediaType": media_type,
        "digest": top.digest,
        "size": len(top.manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return path


def write_dir_layout(path: Path, image: HandImage) -> Path:
    """containers/image's ``dir:`` layout: the manifest byte-exact plus blobs named by hex digest.

    Unlike ``oci:``, this transport carries a Docker schema2 manifest unchanged.
    """
    path.mkdir(parents=True)
    (path / "version").write_text("Directory Transport Version: 1.1\n")
    (path / "manifest.json").write_bytes(image.manifest)
    for blob in image.blobs:
        (path / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
    return path


def read_dir_layout(path: Path) -> tuple[bytes, dict[str, bytes]]:
    """The manifest and the blobs (digest -> bytes) of a ``dir:`` layout written by a client."""
    manifest = (path / "manifest.json").read_bytes()
    blobs = {}
    for entry in path.iterdir():
        if len(entry.name) == 64 and all(c in "0123456789abcdef" for c in entry.name):
            blobs[f"sha256:{entry.name}"] = entry.read_bytes()
    return manifest, blobs


def read_oci_layout(path: Path) -> tuple[dict, dict[str, bytes]]:
    """``index.json`` and every blob (digest -> bytes) of an OCI image layout."""
    index = json.loads((path / "index.json").read_text())
    blobs = {f"sha256:{p.name}": p.read_bytes() for p in (path / "blobs" / "sha256").iterdir()}
    return index, blobs


def busybox_layout(path: Path, tag: str = "latest") -> Path:
    """A runnable busybox image in an OCI layout, made by umoci from the host's busybox-static.

    ``/bin/busybox`` plus applet links for sh, ls, cat and echo; CMD ``/bin/sh``.
    """
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        raise RuntimeError("busybox-static (/bin/busybox) is required to build the test image")
    image = f"{path}:{tag}"
    bundle = path.parent / f"{path.name}-bundle"

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)

    umoci("init", "--layout", str(path))
    umoci("new", "--image", image)
    umoci("unpack", "--image", image, str(bundle))
    bin_dir = bundle / "rootfs" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, bin_dir / "busybox")
    for applet in BUSYBOX_APPLETS:
        (bin_dir / applet).symlink_to("busybox")
    umoci("repack", "--image", image, str(bundle))
    umoci(
        "config",
        "--image",
        image,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/bin",
        "--os",
        "linux",
        "--architecture",
        "amd64",
    )
    shutil.rmtree(bundle)
    return path
