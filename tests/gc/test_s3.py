"""Garbage collection on S3 storage (moto's server): blob objects and upload parts are deleted
from the bucket, listed behind the store's back."""

from __future__ import annotations

import io

from registry import services
from registry.models import Blob, UploadSession
from registry.storage import blob_name
from tests.gc.conftest import HOUR, digests, image_of, layer, run_gc
from tests.registry.conftest import sha256, user_principal


def _blob_keys(bucket) -> set[str]:
    return set(bucket.keys("blobs/"))


def _keys_of(image) -> set[str]:
    return {blob_name(d) for d in digests(image)}


def test_collected_blobs_leave_the_bucket_and_kept_ones_stay(s3, alice, repo, pusher):
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    common = layer("common")
    kept = pusher.push(repo, "kept", image_of("kept", common))
    gone = pusher.push(repo, "gone", image_of("gone", common, layer("gone", 5000)))
    assert _keys_of(kept) | _keys_of(gone) == _blob_keys(s3)
    pusher.untag(repo, "gone")

    run = run_gc(2 * HOUR)

    only_gone = digests(gone) - digests(kept)
    assert run.blobs_deleted == len(only_gone) == 2
    assert run.bytes_freed == sum(len(b) for b in gone.blobs if sha256(b) in only_gone)
    assert _blob_keys(s3) == _keys_of(kept)
    assert set(Blob.objects.values_list("digest", flat=True)) == digests(kept)
    for blob in kept.blobs:
        assert s3.get(blob_name(sha256(blob))) == blob


def test_expired_sessions_and_stray_uploads_leave_the_bucket(s3, alice, repo):
    principal = user_principal(alice)
    expired = services.upload_start(repository=repo, principal=principal)
    services.upload_append(session=expired, stream=io.BytesIO(b"first chunk"), length=11, start=0)
    s3.client.put_object(Bucket=s3.name, Key="uploads/mono-killed/00000000000000000000-x", Body=b"killed")
    run_gc()  # an hour has not passed: all stays
    assert len(s3.keys("uploads/")) == 2
    UploadSession.objects.filter(pk=expired.pk).update(expires=expired.started)
    live = services.upload_start(repository=repo, principal=principal)
    services.upload_append(session=live, stream=io.BytesIO(b"live chunk"), length=10, start=0)

    run = run_gc(2 * HOUR)

    assert run.uploads_cleaned == 2
    assert list(UploadSession.objects.values_list("pk", flat=True)) == [live.pk]
    (remaining,) = s3.keys("uploads/")
    assert remaining.startswith(f"uploads/{live.pk}/")
