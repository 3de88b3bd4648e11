"""Processes for the push-while-collecting test (run with ``python -m``, not collected).

Separate processes on one file database, as the web workers and the Celery worker are. Every
process runs with GC_GRACE_SECONDS=0, so a pass may take anything a push has uploaded but not
yet referenced, and the pusher's namespace has no time machine, so every moved tag leaves
garbage at once.

    python -m tests.gc.race setup                     # migrate (SQLite only) and create the data
    python -m tests.gc.race gc STOP_FILE               # passes back to back until STOP_FILE exists
    python -m tests.gc.race push SEED N REPO:TAG...    # N pushes over HTTP, each pulled back
    python -m tests.gc.race verify                     # a last pass; every tagged image intact

Each prints one JSON line with what happened.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import django

USER, PASSWORD = "racer", "password-123"
# Layers that pushes of both pushers share, in both repositories: a pass deletes one while
# another push uploads (or has just checked) the same digest.
POOL = [f"pooled layer {i} ".encode() * 400 for i in range(3)]


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    command = argv[0]
    if command == "setup":
        return _setup()
    if command == "gc":
        return _gc(Path(argv[1]))
    if command == "push":
        return _push(argv[1], int(argv[2]), argv[3:])
    if command == "verify":
        return _verify()
    raise SystemExit(f"unknown command {command!r}")


def _setup() -> int:
    from django.core.management import call_command
    from django.db import connection

    from accounts import services as account_services
    from registry import services
    from registry.permissions import Principal

    if connection.vendor == "sqlite":
        call_command("migrate", verbosity=0)
    user = account_services.user_create(username=USER, password=PASSWORD)
    user.namespace.time_machine_seconds = 0
    user.namespace.save()
    for name in ("app", "other"):
        services.repository_create(namespace=user.namespace, name=name, principal=Principal(kind="user", user=user))
    return 0


def _gc(stop_file: Path) -> int:
    from registry import gc

    totals = {"passes": 0, "manifests": 0, "links": 0, "blobs": 0, "errors": []}
    deadline = time.monotonic() + 600
    while not stop_file.exists() and time.monotonic() < deadline:
        run = gc.gc_run(trigger="command")
        totals["passes"] += 1
        totals["manifests"] += run.manifests_deleted
        totals["links"] += run.blob_links_deleted
        totals["blobs"] += run.blobs_deleted
        if run.error:
            totals["errors"].append(run.error)
    print(json.dumps(totals))
    return 0


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _image(rng: random.Random):
    from tests.registry.conftest import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Image, descriptor

    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": rng.getrandbits(64)}).encode()
    own = rng.randbytes(2000)
    layers = [own, *rng.sample(POOL, 2)]
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }
    return Image(raw=json.dumps(doc).encode(), media_type=OCI_MANIFEST, blobs=[config, *layers])


def _upload(client, name: str, blob: bytes, headers: dict, chunked: bool) -> int:
    if not chunked:
        return client.upload_blob(name, blob, headers).status_code
    response = client.client.post(f"/v2/{name}/blobs/uploads/", **headers)
    if response.status_code != 202:
        return response.status_code
    location = response["Location"]
    half = len(blob) // 2
    response = client.client.patch(
        location, data=blob[:half], content_type="application/octet-stream", **headers
    )
    if response.status_code != 202:
        return response.status_code
    response = client.client.put(
        f"{location}?digest={_sha256(blob)}",
        data=blob[half:],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"{half}-{len(blob) - 1}",
        **headers,
    )
    return response.status_code


def _push(seed: str, count: int, targets: list[str]) -> int:
    """Push like a client does: HEAD each blob, upload what is missing, PUT the manifest; on
    MANIFEST_BLOB_UNKNOWN start over (what a client's retry does). Then pull it back."""
    from tests.registry.conftest import V2

    client = V2(USER, PASSWORD)
    rng = random.Random(seed)
    result = {"pushed": 0, "retries": 0, "skipped_uploads": 0, "failures": []}
    for i in range(count):
        name, tag = targets[i % len(targets)].split(":")
        name = f"{USER}/{name}"
        image = _image(rng)
        for _attempt in range(50):
            headers = client.push(name)
            statuses = []
            for n, blob in enumerate(image.blobs):
                if client.client.head(f"/v2/{name}/blobs/{_sha256(blob)}", **headers).status_code == 200:
                    result["skipped_uploads"] += 1
                    continue
                statuses.append(_upload(client, name, blob, headers, chunked=n % 2 == 1))
            if any(status != 201 for status in statuses):
                result["failures"].append(f"upload answered {statuses}")
                break
            response = client.put_manifest(name, tag, image.raw, image.media_type, headers)
            if response.status_code == 201:
                result["pushed"] += 1
                problem = _pull_problem(client, name, tag, image)
                if problem:
                    result["failures"].append(problem)
                break
            codes = [e["code"] for e in response.json()["errors"]] if response.status_code == 400 else []
            if codes != ["MANIFEST_BLOB_UNKNOWN"]:
                result["failures"].append(f"manifest PUT answered {response.status_code} {response.content[:300]!r}")
                break
            result["retries"] += 1
        else:
            result["failures"].append(f"{name}:{tag} never got through")
    print(json.dumps(result))
    return 0


def _pull_problem(client, name: str, tag: str, image) -> str | None:
    headers = client.pull(name)
    response = client.client.get(f"/v2/{name}/manifests/{tag}", **headers)
    if response.status_code != 200 or response.content != image.raw:
        return f"{name}:{tag} manifest answered {response.status_code}"
    for blob in image.blobs:
        response = client.client.get(f"/v2/{name}/blobs/{_sha256(blob)}", **headers)
        body = b"".join(response.streaming_content) if response.status_code == 200 else b""
        if response.status_code != 200 or body != blob:
            return f"{name}:{tag} blob {_sha256(blob)} answered {response.status_code}"
    return None


def _verify() -> int:
    """One last pass, then: every alive tag's manifest with every blob linked, recorded and
    stored intact, and nothing else left."""
    from registry import gc
    from registry.models import Blob, Manifest, ManifestBlob, RepositoryBlob, Tag
    from registry.storage import get_blob_store

    run = gc.gc_run(trigger="command")
    store = get_blob_store()
    problems, checked = [], 0
    tags = Tag.objects.filter(lifetime_end__isnull=True, hidden=False).select_related("manifest")
    for tag in tags:
        rows = ManifestBlob.objects.filter(manifest=tag.manifest).values_list("blob_id", "blob__digest")
        for blob_id, digest in rows:
            checked += 1
            if not RepositoryBlob.objects.filter(repository_id=tag.repository_id, blob_id=blob_id).exists():
                problems.append(f"{tag.name}: {digest} not linked")
            try:
                with store.open_blob(digest) as f:
                    if _sha256(f.read()) != digest:
                        problems.append(f"{tag.name}: {digest} corrupt")
            except Exception as exc:  # a missing file is exactly what this looks for
                problems.append(f"{tag.name}: {digest} unreadable: {exc!r}")
    result = {
        "tags": len(tags),
        "manifests": Manifest.objects.count(),
        "manifests_deleted": run.manifests_deleted,
        "blobs": checked,
        "blob_rows": Blob.objects.count(),
        "stored": sorted(p.name for p in (Path(store.root) / "blobs").rglob("*") if p.is_file()),
        "problems": problems + ([run.error] if run.error else []),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
