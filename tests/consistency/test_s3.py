"""The storage check on S3 (moto's server): listings page through the bucket, and repairs act on
objects (orphans and upload parts deleted, damaged blobs moved to quarantine/)."""

from __future__ import annotations

from datetime import timedelta

import requests
from django.utils import timezone

from registry import consistency
from registry.storage import blob_name
from tests.consistency.conftest import image_of, layer
from tests.registry.conftest import sha256


def test_the_check_pages_through_the_bucket_and_repairs_objects(s3, as_alice, repo):
    images = [as_alice.push_image("alice/app", f"t{i}", image_of(f"t{i}", layer(f"l{i}", 400))) for i in range(3)]
    lost, damaged = images[0], images[1]
    s3.client.delete_object(Bucket=s3.name, Key=blob_name(sha256(lost.blobs[1])))
    s3.client.put_object(Bucket=s3.name, Key=blob_name(sha256(damaged.blobs[1])), Body=b"short")
    orphan = b"an object no row names"
    s3.client.put_object(Bucket=s3.name, Key=blob_name(sha256(orphan)), Body=orphan)
    s3.client.put_object(Bucket=s3.name, Key="uploads/mono-dead/00000000000000000000-x", Body=b"part")
    s3.client.put_object(Bucket=s3.name, Key="squash/aa/aaaa-stale.tar", Body=b"tar")
    s3.client.put_object(Bucket=s3.name, Key="build-packages/0b7c1d52-0000-4000-8000-000000000001", Body=b"pkg")

    # Pages of two keys: every object is seen all the same.
    report = consistency.storage_check(page_size=2)
    assert report.checked["stored_objects"] == len(s3.keys()) == 9
    assert {(f.kind, f.name, f.problem) for f in report.findings} == {
        ("blob_missing", sha256(lost.blobs[1]), True),
        ("blob_corrupt", sha256(damaged.blobs[1]), True),
        # Just written: within the grace period.
        ("blob_orphan", sha256(orphan), False),
        ("upload_orphan", "mono-dead", False),
        ("squash_orphan", "squash/aa/aaaa-stale.tar", False),
        ("package_orphan", "0b7c1d52-0000-4000-8000-000000000001", False),
    }
    assert {a["manifest"] for a in report.affected} == {lost.digest, damaged.digest}

    later = timezone.now() + timedelta(hours=3)
    report = consistency.storage_check(repair=True, unlink_missing=True, now=later, page_size=2)
    assert sorted(f.kind for f in report.problems) == ["blob_corrupt", "blob_missing"]  # bytes still missing
    keys = s3.keys()
    assert not [k for k in keys if k.startswith(("uploads/", "squash/", "build-packages/"))]
    assert blob_name(sha256(orphan)) not in keys
    (quarantined,) = [k for k in keys if k.startswith("quarantine/")]
    assert s3.get(quarantined) == b"short"

    # Unlinked: a push of the same images stores the bytes again, and all is well.
    as_alice.push_image("alice/app", "t0", lost)
    as_alice.push_image("alice/app", "t1", damaged)
    report = consistency.storage_check(verify_digests=True, now=later, page_size=2)
    assert report.problems == [] and report.checked["digests_verified"] == 6
    for image in images:
        assert s3.get(blob_name(sha256(image.blobs[1]))) == image.blobs[1]
    headers = as_alice.pull("alice/app")
    response = as_alice.client.get(f"/v2/alice/app/blobs/{sha256(lost.blobs[1])}", **headers)
    assert response.status_code == 307
    assert requests.get(response["Location"], timeout=10).content == lost.blobs[1]
