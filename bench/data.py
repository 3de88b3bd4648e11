"""Test data: random blob files and OCI image layouts for skopeo."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from bench.client import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST

CHUNK = 4 * 1024 * 1024


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their digest."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            data = os.urandom(min(CHUNK, left))
            h.update(data)
            f.write(data)
            left -= len(data)
    return "sha256:" + h.hexdigest()


def _write_blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _tar_layer(layout: Path, index: int, size: int) -> dict:
    """An uncompressed tar layer with one file of ``size`` random bytes, written as it is hashed."""
    tmp = layout / "blobs" / "sha256" / f"tmp-{index}"
    h = hashlib.sha256()

    class _Hashing(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def writable(self):
            return True

        def tell(self):
            return self.f.tell()

        def write(self, b):
            h.update(b)
            return self.f.write(b)

    with open(tmp, "wb") as raw, tarfile.open(fileobj=_Hashing(raw), mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"layer{index}/data.bin")
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, _RandomReader(size))
    digest = h.hexdigest()
    os.replace(tmp, layout / "blobs" / "sha256" / digest)
    return {"digest": f"sha256:{digest}", "size": (layout / "blobs" / "sha256" / digest).stat().st_size}


class _RandomReader:
    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def oci_layout(layout: Path, *, layers: int, total_bytes: int, tag: str, label: str) -> int:
    """An OCI image layout holding one image of ``layers`` random tar layers; its total size."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    per_layer = max(total_bytes // layers, 1)
    descriptors = [_tar_layer(layout, i, per_layer) for i in range(layers)]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench": label}},
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
        },
        separators=(",", ":"),
    ).encode()
    config_desc = _write_blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config_desc},
            "layers": [{"mediaType": OCI_LAYER, **d} for d in descriptors],
        },
        separators=(",", ":"),
    ).encode()
    manifest_desc = _write_blob(layout, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                **manifest_desc,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return sum(d["size"] for d in descriptors) + len(config) + len(manifest)
