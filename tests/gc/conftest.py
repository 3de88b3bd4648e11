"""Helpers for the garbage collection tests: images with chosen blobs, set-up through the
services, time travel (a pass run at ``now + after``), and what storage really holds."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from registry import gc, services
from registry.models import Blob, GarbageCollectionRun, Manifest, Repository, RepositoryBlob
from registry.permissions import Principal
from tests.conftest import PASSWORD
from tests.e2e.conftest import clients  # noqa: F401  (the e2e clients, for test_e2e_gc)
from tests.registry.conftest import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    V2,
    Image,
    descriptor,
    sha256,
    stored_files,
    user_principal,
)
from tests.storage.conftest import moto_endpoint, s3  # noqa: F401  (S3 through moto, for test_s3)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def image_of(seed: str, *layers: bytes, subject: Image | None = None, artifact_type: str | None = None) -> Image:
    """An OCI image manifest with its own config and exactly ``layers`` (shared ones included)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    doc: dict = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = descriptor(OCI_CONFIG, config)
    doc["layers"] = [descriptor(OCI_LAYER, layer) for layer in layers]
    if subject is not None:
        doc["subject"] = descriptor(subject.media_type, subject.raw)
    return Image(raw=json.dumps(doc).encode(), media_type=OCI_MANIFEST, blobs=[config, *layers])


def layer(name: str, size: int = 300) -> bytes:
    return (name.encode() * size)[:size]


def digests(image: Image) -> set[str]:
    return {sha256(blob) for blob in image.blobs}


def stored_digests() -> set[str]:
    """Digests of the blob files storage really holds (listed from the filesystem)."""
    return {"sha256:" + path.rsplit("/", 1)[1] for path in stored_files()["blobs"]}


def blob_rows() -> set[str]:
    return set(Blob.objects.values_list("digest", flat=True))


def linked(repository: Repository) -> set[str]:
    return set(RepositoryBlob.objects.filter(repository=repository).values_list("blob__digest", flat=True))


def manifests(repository: Repository) -> set[str]:
    return set(Manifest.objects.filter(repository=repository).values_list("digest", flat=True))


def run_gc(after: timedelta = timedelta(0), *, repository: Repository | None = None) -> GarbageCollectionRun:
    """One pass as if it ran ``after`` from now; fails the test if the pass recorded an error."""
    run = gc.gc_run(
        trigger=GarbageCollectionRun.Trigger.COMMAND, repository=repository, now=timezone.now() + after
    )
    assert run.error == "", run.error
    assert run.finished is not None
    return run


class Pusher:
    """Pushes through the services as ``principal`` (set-up, not under test)."""

    def __init__(self, principal: Principal):
        self.principal = principal

    def blobs(self, repository: Repository, image: Image) -> None:
        for blob in image.blobs:
            services.blob_upload_monolithic(
                repository=repository, digest=sha256(blob), stream=_stream(blob), length=len(blob)
            )

    def push(self, repository: Repository, reference: str, image: Image) -> Image:
        self.blobs(repository, image)
        services.manifest_put(
            repository=repository,
            reference=reference,
            raw=image.raw,
            content_type=image.media_type,
            principal=self.principal,
            ip=None,
        )
        return image

    def untag(self, repository: Repository, name: str) -> None:
        services.tag_delete(repository=repository, name=name, principal=self.principal, ip=None)


def _stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


@pytest.fixture
def pusher(alice) -> Pusher:
    return Pusher(user_principal(alice))


@pytest.fixture
def repo(alice) -> Repository:
    return services.repository_create(namespace=alice.namespace, name="app", principal=user_principal(alice))


@pytest.fixture
def as_alice(alice) -> V2:
    return V2("alice", PASSWORD)


def assert_pulls_intact(client: V2, name: str, image: Image) -> None:
    """The manifest and every blob come back over /v2/ byte for byte."""
    headers = client.pull(name)
    response = client.client.get(f"/v2/{name}/manifests/{image.digest}", **headers)
    assert response.status_code == 200, response.content
    assert response.content == image.raw
    for blob in image.blobs:
        response = client.client.get(f"/v2/{name}/blobs/{sha256(blob)}", **headers)
        assert response.status_code == 200, (sha256(blob), response.status_code)
        assert b"".join(response.streaming_content) == blob
