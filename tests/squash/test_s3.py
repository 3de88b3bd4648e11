"""Squashed downloads with S3 storage, against moto's S3 server (real HTTP, no mocks): the first
download streams the flattening with its exact Content-Length and publishes the tarball under
``squash/`` in the bucket; the next one is a 307 to a presigned URL that answers the same bytes;
garbage collection deletes the object of a collected manifest; a flattening that fails (a layer
blob gone from the bucket) leaves no object under any final key, its row failed, and the next
download flattens again once the blob is back.

The bytes are checked against a second, local flattening of the same layers (the tarball is
deterministic), not only against what the server says about itself."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from datetime import timedelta

import pytest
import requests
from django.test import Client
from django.utils import timezone

from accounts.models import User
from registry import gc
from registry import services as registry_services
from registry.models import GarbageCollectionRun, Repository
from registry.storage import blob_name
from squash.models import SquashedImage
from squash.services import SquashFailed
from squash.store import get_squash_store
from squash.tarball import plan_squash, write_squash
from tests.conftest import PASSWORD, basic
from tests.registry.conftest import store_blob, user_principal
from tests.squash.images_support import OCI_CONFIG, OCI_MANIFEST, Image, Layer, sha256
from tests.storage.conftest import moto_endpoint, s3  # noqa: F401  (S3 through moto's server)

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "testserver"  # the test client's host: the loaded name's registry part


def flattenings_finished() -> None:
    """Wait for this process's flattening threads (they publish and mark the row after the last
    byte was read; in-memory SQLite must not be used by two threads at once)."""
    for thread in threading.enumerate():
        if thread.name == "squash-flatten":
            thread.join(60)


@pytest.fixture
def bucket(s3):  # noqa: F811
    yield s3
    flattenings_finished()


def random_image(*compressions: str, sizes: tuple[int, ...]) -> Image:
    """Layers bottom first, one file of fresh random bytes each (random: compression cannot hide
    a short or misplaced write)."""
    layers = [
        (Layer().dir("data").file(f"data/layer{i}.bin", os.urandom(size)), how)
        for i, (how, size) in enumerate(zip(compressions, sizes, strict=True))
    ]
    return Image(layers)


def config_bytes(image: Image) -> bytes:
    return json.dumps(image.config).encode()


def push(repository: Repository, image: Image, *tags: str) -> None:
    """Store the image's blobs (into the bucket) and its manifest under ``tags``, as alice,
    through the registry services."""
    principal = user_principal(User.objects.get(username="alice"))
    config = config_bytes(image)
    for data in (config, *(blob.data for blob in image.blobs)):
        store_blob(repository, data, principal)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": len(b.data)} for b in image.blobs],
    }
    for tag in tags:
        registry_services.manifest_put(
            repository=repository,
            reference=tag,
            raw=json.dumps(manifest).encode(),
            content_type=OCI_MANIFEST,
            principal=principal,
            ip=None,
        )


def local_flattening(image: Image, repository: Repository, tag: str) -> bytes:
    """The tarball flattened here, from the image's own bytes (nothing read from the server)."""
    plan = plan_squash(
        layers=image.sources(),
        config=image.config,
        repo_tag=f"{HOST}/{repository.full_name}:{tag}.squash",
        uncompressed_size_of=image.uncompressed_size_of,
    )
    out = io.BytesIO()
    result = write_squash(plan, out)
    assert result.size == plan.total_size == len(out.getvalue())
    return out.getvalue()


def download(repository: Repository, tag: str):
    return Client().get(f"/c1/squash/{repository.full_name}/{tag}", HTTP_AUTHORIZATION=basic("alice", PASSWORD))


def streamed(response) -> bytes:
    assert response.status_code == 200, response.content
    assert response.streaming
    data = b"".join(response.streaming_content)
    flattenings_finished()
    return data


def spooled(storage_name: str) -> bool:
    return os.path.exists(get_squash_store().part_path(storage_name))


@pytest.fixture
def repo(alice) -> Repository:
    return registry_services.repository_create(namespace=alice.namespace, name="app", principal=user_principal(alice))


def test_first_download_streams_and_publishes_then_later_ones_redirect_to_a_presigned_url(bucket, repo):
    # gzip below (its size from the trailer, a ranged GET), zstd on top (measured once).
    image = random_image("gzip", "zstd", sizes=(200 * 1024, 400 * 1024))
    push(repo, image, "v1")
    assert sorted(bucket.keys()) == sorted(
        blob_name(sha256(data)) for data in (config_bytes(image), *(b.data for b in image.blobs))
    )
    expected = local_flattening(image, repo, "v1")

    first = download(repo, "v1")
    assert first["X-Squash-Cache"] == "miss"
    assert first["Content-Type"] == "application/x-tar"
    assert first["Content-Length"] == str(len(expected))
    body = streamed(first)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert body == expected

    row = SquashedImage.objects.get(repository=repo, tag="v1")
    assert row.state == SquashedImage.State.READY, row.error
    assert (row.size, row.sha256, row.flattenings) == (len(body), hashlib.sha256(body).hexdigest(), 1)
    # Published to the bucket whole, under squash/, and nothing left in the local spool.
    assert row.storage_name.startswith("squash/")
    assert bucket.keys("squash/") == [row.storage_name]
    assert bucket.get(row.storage_name) == body
    assert not spooled(row.storage_name)

    second = download(repo, "v1")
    assert second.status_code == 307
    assert second["X-Squash-Cache"] == "hit"
    assert second["ETag"] == f'"sha256:{row.sha256}"'
    location = second["Location"]
    assert location.startswith(f"{bucket.endpoint}/{bucket.name}/{row.storage_name}?")
    assert "Signature=" in location  # presigned (SigV2 or SigV4 query string)
    fetched = requests.get(location, timeout=30)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Length"] == str(len(expected))
    assert fetched.content == expected

    row.refresh_from_db()
    assert row.flattenings == 1, "the cached tarball was served, not flattened again"
    assert bucket.keys("squash/") == [row.storage_name]


def test_garbage_collection_deletes_the_tarball_of_a_collected_manifest_from_the_bucket(bucket, repo, alice):
    kept_image = random_image("gzip", sizes=(64 * 1024,))
    gone_image = random_image("zstd", "gzip", sizes=(32 * 1024, 64 * 1024))
    push(repo, kept_image, "kept")
    push(repo, gone_image, "gone")
    assert streamed(download(repo, "kept")) == local_flattening(kept_image, repo, "kept")
    assert streamed(download(repo, "gone")) == local_flattening(gone_image, repo, "gone")
    kept = SquashedImage.objects.get(repository=repo, tag="kept")
    gone = SquashedImage.objects.get(repository=repo, tag="gone")
    assert bucket.keys("squash/") == sorted([kept.storage_name, gone.storage_name])

    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    registry_services.tag_delete(repository=repo, name="gone", principal=user_principal(alice), ip=None)
    run = gc.gc_run(trigger=GarbageCollectionRun.Trigger.COMMAND, now=timezone.now() + timedelta(hours=2))

    assert run.error == ""
    assert run.manifests_deleted == 1
    assert list(SquashedImage.objects.values_list("tag", flat=True)) == ["kept"]
    assert bucket.keys("squash/") == [kept.storage_name]
    assert bucket.get(kept.storage_name) == local_flattening(kept_image, repo, "kept")
    # The gone image's layers left the bucket with it; the kept image's are all there.
    for blob in gone_image.blobs:
        assert blob_name(blob.digest) not in bucket.keys("blobs/")
    for blob in kept_image.blobs:
        assert bucket.get(blob_name(blob.digest)) == blob.data


def test_a_failed_flattening_publishes_nothing_and_the_next_download_flattens_again(bucket, repo):
    # zstd layers: their sizes are measured once and remembered, so the second tag's download
    # plans without reading the layers and the missing blob is met only while flattening. The
    # top layer is large enough that part of the tarball is written (and streamed) before that.
    image = random_image("zstd", "zstd", sizes=(64 * 1024, 1024 * 1024))
    push(repo, image, "one", "two")
    assert streamed(download(repo, "one")) == local_flattening(image, repo, "one")
    one = SquashedImage.objects.get(repository=repo, tag="one")
    assert bucket.keys("squash/") == [one.storage_name]

    bottom = image.blobs[0]
    bucket.client.delete_object(Bucket=bucket.name, Key=blob_name(bottom.digest))
    expected = local_flattening(image, repo, "two")

    response = download(repo, "two")
    assert response.status_code == 200
    assert response["X-Squash-Cache"] == "miss"
    assert response["Content-Length"] == str(len(expected))
    received = b""
    seen_during: list[list[str]] = []
    with pytest.raises(SquashFailed):
        for chunk in response.streaming_content:
            received += chunk
            seen_during.append(bucket.keys("squash/"))
    flattenings_finished()
    # Bytes of the top layer came through before the failure: the stream was cut short, and at no
    # point (while streaming, and after) did the bucket hold anything but the first tag's tarball.
    assert 0 < len(received) < len(expected)
    assert received == expected[: len(received)]
    assert seen_during and all(keys == [one.storage_name] for keys in seen_during)
    assert bucket.keys("squash/") == [one.storage_name]
    two = SquashedImage.objects.get(repository=repo, tag="two")
    assert two.state == SquashedImage.State.FAILED
    assert two.error and two.sha256 == ""
    assert not spooled(two.storage_name)
    failed_name = two.storage_name

    # The blob is back: the failed row is taken over by the next download.
    bucket.client.put_object(Bucket=bucket.name, Key=blob_name(bottom.digest), Body=bottom.data)
    again = download(repo, "two")
    assert again["X-Squash-Cache"] == "miss"
    assert streamed(again) == expected
    two.refresh_from_db()
    assert two.state == SquashedImage.State.READY, two.error
    assert (two.flattenings, two.sha256) == (2, hashlib.sha256(expected).hexdigest())
    assert two.storage_name != failed_name
    assert bucket.keys("squash/") == sorted([one.storage_name, two.storage_name])
    assert bucket.get(two.storage_name) == expected


def test_a_tarball_gone_from_the_bucket_is_flattened_again_not_redirected_to(bucket, repo):
    # A bucket lifecycle rule, an operator, or an eviction racing this download removed the
    # object while its row still says READY: a redirect would send the client to a 404.
    image = random_image("gzip", sizes=(64 * 1024,))
    push(repo, image, "v1")
    expected = local_flattening(image, repo, "v1")
    assert streamed(download(repo, "v1")) == expected
    row = SquashedImage.objects.get(repository=repo, tag="v1")
    bucket.client.delete_object(Bucket=bucket.name, Key=row.storage_name)

    response = download(repo, "v1")
    assert response["X-Squash-Cache"] == "miss"
    assert streamed(response) == expected
    row.refresh_from_db()
    assert row.state == SquashedImage.State.READY and row.flattenings == 2
    assert bucket.keys("squash/") == [row.storage_name]
    assert bucket.get(row.storage_name) == expected
    location = download(repo, "v1")["Location"]
    assert requests.get(location, timeout=30).content == expected
