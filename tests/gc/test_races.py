"""The races between a pass and a push, one interleaving at a time: the HEAD-then-PUT push,
links a push relies on, a blob GC took before the push got to it, bytes being published."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.locks import digest_lock
from registry.models import Manifest, RepositoryBlob
from tests.gc.conftest import (
    HOUR,
    MINUTE,
    assert_pulls_intact,
    blob_rows,
    digests,
    image_of,
    layer,
    run_gc,
    stored_digests,
)
from tests.registry.conftest import assert_error, sha256


def _age_links(repository, age: timedelta) -> None:
    RepositoryBlob.objects.filter(repository=repository).update(linked=timezone.now() - age)


def _linked_at(repository, blob: bytes):
    return RepositoryBlob.objects.get(repository=repository, blob__digest=sha256(blob)).linked


def test_a_blob_head_restarts_the_clock_of_an_old_link_only(as_alice, repo, pusher):
    image = image_of("head", layer("head"))
    pusher.blobs(repo, image)
    config, layer_blob = image.blobs
    headers = as_alice.pull("alice/app")
    fresh = _linked_at(repo, config)

    with CaptureQueriesContext(connection) as queries:
        response = as_alice.client.head(f"/v2/alice/app/blobs/{sha256(config)}", **headers)
    assert response.status_code == 200
    assert len(queries) == 1  # a fresh link costs a pull nothing
    assert _linked_at(repo, config) == fresh

    _age_links(repo, 40 * MINUTE)  # older than half the grace period (an hour)
    before = timezone.now()
    assert as_alice.client.head(f"/v2/alice/app/blobs/{sha256(config)}", **headers).status_code == 200
    response = as_alice.client.get(f"/v2/alice/app/blobs/{sha256(layer_blob)}", **headers)
    assert response.status_code == 200

    assert _linked_at(repo, config) >= before and _linked_at(repo, layer_blob) >= before
    # So a pass an hour after the original upload leaves them to the push that saw them.
    assert run_gc(30 * MINUTE).blob_links_deleted == 0


def test_without_a_grace_period_a_pull_never_writes(settings, as_alice, repo, pusher):
    settings.GC_GRACE_SECONDS = 0
    image = image_of("no grace", layer("no grace"))
    pusher.blobs(repo, image)
    _age_links(repo, HOUR)
    old = _linked_at(repo, image.blobs[0])

    response = as_alice.client.head(f"/v2/alice/app/blobs/{sha256(image.blobs[0])}", **as_alice.pull("alice/app"))

    assert response.status_code == 200
    assert _linked_at(repo, image.blobs[0]) == old


def test_a_push_relying_on_a_blob_gc_took_fails_cleanly_and_an_upload_fixes_it(as_alice, repo, pusher):
    image = image_of("raced", layer("raced"))
    headers = as_alice.push("alice/app")
    for blob in image.blobs:
        assert as_alice.upload_blob("alice/app", blob, headers).status_code == 201
    # The client checks its blobs are there, and would skip uploading them...
    for blob in image.blobs:
        assert as_alice.client.head(f"/v2/alice/app/blobs/{sha256(blob)}", **headers).status_code == 200
    # ...but a pass long after the upload (no manifest ever came) takes them first.
    run = run_gc(2 * HOUR)
    assert run.blobs_deleted == 2 and not digests(image) & stored_digests()

    response = as_alice.put_manifest("alice/app", "v1", image.raw, image.media_type, headers)

    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert not Manifest.objects.exists()
    for blob in image.blobs:
        assert as_alice.client.head(f"/v2/alice/app/blobs/{sha256(blob)}", **headers).status_code == 404
        assert as_alice.upload_blob("alice/app", blob, headers).status_code == 201
    response = as_alice.put_manifest("alice/app", "v1", image.raw, image.media_type, headers)
    assert response.status_code == 201, response.content
    assert_pulls_intact(as_alice, "alice/app", image)


def test_a_push_restarts_the_clock_of_the_old_links_it_relies_on(as_alice, repo, pusher):
    old_blob, new_blob = layer("old blob"), layer("new blob")
    image = image_of("uses both", old_blob, new_blob)
    pusher.blobs(repo, image)
    RepositoryBlob.objects.filter(repository=repo, blob__digest=sha256(old_blob)).update(
        linked=timezone.now() - 50 * MINUTE
    )
    fresh = _linked_at(repo, new_blob)
    before = timezone.now()

    response = as_alice.put_manifest("alice/app", "v1", image.raw, image.media_type)

    assert response.status_code == 201, response.content
    assert _linked_at(repo, old_blob) >= before  # refreshed in the push's transaction
    assert _linked_at(repo, new_blob) == fresh  # young enough: not written


def test_a_mount_from_a_link_gc_took_falls_back_to_an_upload(as_alice, alice, repo, pusher):
    blob = layer("mounted")
    pusher.blobs(repo, image_of("mount source", blob))
    run_gc(2 * HOUR)
    headers = as_alice.headers("repository:alice/app:pull", "repository:alice/target:pull,push")

    response = as_alice.client.post(
        f"/v2/alice/target/blobs/uploads/?mount={sha256(blob)}&from=alice/app", **headers
    )

    assert response.status_code == 202  # an upload session: the client sends the bytes instead
    assert sha256(blob) not in blob_rows()


def test_gc_leaves_the_bytes_of_a_digest_being_published(settings, repo, pusher):
    """A publisher holds the digest's lock from its "are the bytes there?" check until its Blob
    row is committed; a pass meanwhile skips the digest instead of deleting bytes under it."""
    settings.GC_GRACE_SECONDS = 0
    blob = layer("being published")
    pusher.blobs(repo, image_of("published", blob))
    RepositoryBlob.objects.all().delete()  # orphan rows: collectable
    holding, release = threading.Event(), threading.Event()

    def publisher():
        try:
            with digest_lock(sha256(blob)):
                holding.set()
                release.wait(30)
        finally:
            connection.close()  # this thread's own connection (the PostgreSQL advisory lock)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        assert holding.wait(30)
        run = run_gc()
        assert run.blobs_deleted == 1  # the config; the locked layer is skipped
        assert sha256(blob) in blob_rows() & stored_digests()
    finally:
        release.set()
        thread.join(30)

    assert run_gc().blobs_deleted == 1
    assert stored_digests() == set()
