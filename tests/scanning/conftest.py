"""Images with real package databases, written byte by byte by the tests (nothing downloaded).

- ``layer(files, ...)``: a tar layer (gzip, zstd or plain) with files, symlinks and whiteouts;
- ``dpkg_status``, ``apk_installed``, ``python_metadata``, ``npm_package``: the files the
  package managers write;
- ``rpmdb_sqlite``: rpm's SQLite database (the ``Packages`` table of header blobs), written
  with headers built here in rpm's header format (no ``rpm`` binary on the test machines: the
  layout is index count, data size, 16-byte index entries, data area; INT32 data 4-aligned);
- ``image(layers)``: an OCI image manifest over those layers, stored through the services.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import struct
import tarfile
import tempfile
from dataclasses import dataclass

import pytest
import zstandard

from registry import services as registry_services
from scanning import services
from tests.registry.conftest import OCI_CONFIG, Image, descriptor, store_image, user_principal

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class Layer:
    data: bytes
    media_type: str


def layer(files: dict[str, bytes] | None = None, *, symlinks=None, whiteouts=(), compression="gzip") -> Layer:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in (files or {}).items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(content), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
        for path, target in (symlinks or {}).items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 1_700_000_000
            tar.addfile(info)
        for path in whiteouts:
            info = tarfile.TarInfo(path)
            info.size, info.mtime = 0, 1_700_000_000
            tar.addfile(info, io.BytesIO(b""))
    data = raw.getvalue()
    if compression == "gzip":
        return Layer(gzip.compress(data, mtime=0), GZIP_LAYER)
    if compression == "zstd":
        return Layer(zstandard.ZstdCompressor().compress(data), ZSTD_LAYER)
    return Layer(data, TAR_LAYER)


def image(layers: list[Layer], seed: str = "x") -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(item.media_type, item.data) for item in layers],
    }
    return Image(raw=json.dumps(doc).encode(), media_type=OCI_MANIFEST, blobs=[config, *[i.data for i in layers]])


def os_release(os_id: str, version: str, pretty: str) -> bytes:
    return f'PRETTY_NAME="{pretty}"\nNAME="{pretty}"\nID={os_id}\nVERSION_ID="{version}"\n'.encode()


def dpkg_status(*packages: tuple) -> bytes:
    """(name, version[, source]) entries, installed, as dpkg writes them."""
    stanzas = []
    for name, version, *rest in packages:
        lines = [f"Package: {name}", "Status: install ok installed", "Architecture: amd64"]
        if rest:
            lines.append(f"Source: {rest[0]}")
        lines += [f"Version: {version}", "Description: a package", " with a long description."]
        stanzas.append("\n".join(lines) + "\n")
    return "\n".join(stanzas).encode()


def apk_installed(*packages: tuple) -> bytes:
    """(name, version, origin) entries as apk writes /lib/apk/db/installed."""
    return "".join(
        f"C:Q1abc=\nP:{name}\nV:{version}\nA:x86_64\nS:1000\nI:2000\nT:a package\no:{origin}\nm:someone\n\n"
        for name, version, origin in packages
    ).encode()


def python_metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: a distribution\n\nLong text.\n".encode()


def npm_package(name: str, version: str) -> bytes:
    return json.dumps({"name": name, "version": version, "main": "index.js"}).encode()


def rpm_header(tags: dict[int, object]) -> bytes:
    """An rpm header blob (as stored in rpmdb.sqlite) with STRING and INT32 tags."""
    entries, data = [], bytearray()
    for tag, value in sorted(tags.items()):
        if isinstance(value, int):
            while len(data) % 4:
                data.append(0)
            entries.append(struct.pack(">iiii", tag, 4, len(data), 1))
            data += struct.pack(">i", value)
        else:
            entries.append(struct.pack(">iiii", tag, 6, len(data), 1))
            data += value.encode() + b"\x00"
    return struct.pack(">II", len(entries), len(data)) + b"".join(entries) + bytes(data)


def rpmdb_sqlite(*packages: tuple) -> bytes:
    """(name, version, release, epoch or None, source rpm) -> the bytes of an rpmdb.sqlite."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rpmdb.sqlite")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        for name, version, release, epoch, source in packages:
            tags = {1000: name, 1001: version, 1002: release, 1022: "x86_64", 1044: source}
            if epoch is not None:
                tags[1003] = epoch
            db.execute("INSERT INTO Packages (blob) VALUES (?)", (rpm_header(tags),))
        db.commit()
        db.close()
        with open(path, "rb") as f:
            return f.read()


@pytest.fixture
def repo(alice):
    """``alice/app``: private, image, owned by alice, empty."""
    return registry_services.repository_create(namespace=alice.namespace, name="app", principal=user_principal(alice))


@pytest.fixture
def principal(alice):
    return user_principal(alice)


@pytest.fixture
def push(repo, principal, django_capture_on_commit_callbacks):
    """``push(image, tag)`` -> the stored Manifest, scanned: the push's on-commit hook is run
    with Celery in eager mode, so the task it queues runs here, in-process."""
    from quay_site.celery import app
    from registry.models import Manifest

    def run(img: Image, reference: str = "latest", repository=None, scan=True):
        target = repository or repo
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            store_image(target, reference, img, principal)
        manifest = Manifest.objects.get(repository=target, digest=img.digest)
        if scan:
            app.conf.task_always_eager = True
            try:
                for callback in callbacks:
                    callback()
            finally:
                app.conf.task_always_eager = False
        return Manifest.objects.get(pk=manifest.pk)

    return run


@pytest.fixture
def other_repo(alice, principal):
    return registry_services.repository_create(namespace=alice.namespace, name="other", principal=principal)


def write_advisories(directory, *docs: dict) -> list[str]:
    paths = []
    for doc in docs:
        path = os.path.join(directory, f"{doc['id']}.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        paths.append(path)
    return paths


def advisory(
    osv_id: str, ecosystem: str, name: str, *, fixed=None, introduced="0", last_affected=None, **extra
) -> dict:
    events = [{"introduced": introduced}]
    if fixed:
        events.append({"fixed": fixed})
    if last_affected:
        events.append({"last_affected": last_affected})
    doc = {
        "schema_version": "1.6.0",
        "id": osv_id,
        "modified": "2026-11-01T00:00:00Z",
        "published": "2026-10-01T00:00:00Z",
        "summary": f"{name} is affected by {osv_id}",
        "details": f"A flaw in {name}.",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "SEMVER" if ecosystem == "npm" else "ECOSYSTEM", "events": events}],
            }
        ],
        "references": [{"type": "ADVISORY", "url": f"https://security.example/{osv_id}"}],
    }
    doc.update(extra)
    return doc


def import_docs(tmp_path, *docs):
    directory = tmp_path / f"osv-{len(os.listdir(tmp_path))}"
    directory.mkdir()
    write_advisories(directory, *docs)
    return services.advisories_import(path=str(directory))
