"""``manage.py storage_check`` on filesystem storage: each kind of disagreement between the
database and storage is found, repaired where it may be, and a push is never harmed."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from builds.models import BuildPackage
from registry import consistency, services
from registry.models import Blob, RepositoryBlob
from squash.models import SquashedImage
from tests.consistency.conftest import (
    blob_path,
    digest_held_elsewhere,
    image_of,
    layer,
    plant,
    run_command,
)
from tests.gc.conftest import assert_pulls_intact
from tests.registry.conftest import assert_error, sha256, user_principal


def _kinds(report) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.kind, []).append(finding.name)
    return found


def _push(as_alice, tag: str, *layers: bytes):
    return as_alice.push_image("alice/app", tag, image_of(tag, *layers))


def test_a_consistent_registry_is_clean_and_every_digest_verifies(as_alice, repo):
    image = _push(as_alice, "latest", layer("a", 5000), layer("b", 300))

    status, out = run_command("storage_check", "--verify-digests")
    assert status == 0, out
    assert "Clean." in out
    assert "3 blob rows" in out and "3 digests verified" in out

    status, out = run_command("storage_check", "--json")
    report = json.loads(out)
    assert status == 0 and report["clean"] is True and report["findings"] == []
    assert report["checked"]["stored_blob_bytes"] == sum(len(b) for b in image.blobs)


def test_missing_bytes_are_reported_with_what_they_break_and_unlinking_lets_a_push_heal_them(as_alice, repo):
    shared = layer("shared", 2000)
    image = _push(as_alice, "latest", shared)
    other = _push(as_alice, "other", shared, layer("own", 100))
    _push(as_alice, "fine", layer("fine", 100))
    lost = sha256(shared)
    blob_path(lost).unlink()

    status, out = run_command("storage_check", "--json")
    assert status == 1
    report = json.loads(out)
    assert [(f["kind"], f["name"]) for f in report["findings"]] == [("blob_missing", lost)]
    assert {(a["manifest"], tuple(a["tags"])) for a in report["affected"]} == {
        (image.digest, ("latest",)),
        (other.digest, ("other",)),
    }
    assert all(a["repository"] == "alice/app" and a["missing_blobs"] == [lost] for a in report["affected"])

    # A repair cannot invent bytes: the row stays, the pull fails cleanly, the problem remains.
    status, out = run_command("storage_check", "--repair")
    assert status == 1 and "left as is" in out and f"alice/app@{image.digest} (latest)" in out
    headers = as_alice.pull("alice/app")
    response = as_alice.client.get(f"/v2/alice/app/blobs/{lost}", **headers)
    assert_error(response, 404, "BLOB_UNKNOWN")

    # Unlinked: HEAD says unknown too, so a client pushing the image uploads the bytes again.
    status, out = run_command("storage_check", "--repair", "--unlink-missing")
    assert status == 1 and "repository links removed" in out
    assert as_alice.client.head(f"/v2/alice/app/blobs/{lost}", **headers).status_code == 404
    assert Blob.objects.filter(digest=lost).exists()  # manifests still name it

    as_alice.push_image("alice/app", "latest", image)
    assert blob_path(lost).read_bytes() == shared
    status, out = run_command("storage_check", "--verify-digests")
    assert status == 0, out
    assert_pulls_intact(as_alice, "alice/app", image)
    assert_pulls_intact(as_alice, "alice/app", other)


def test_damaged_bytes_are_quarantined_and_a_push_stores_them_again(as_alice, repo):
    truncated, flipped = layer("truncated", 4000), layer("flipped", 4000)
    image = _push(as_alice, "latest", truncated, flipped)
    path = blob_path(sha256(truncated))
    path.write_bytes(truncated[:1000])
    damaged = bytearray(flipped)
    damaged[10] ^= 0xFF
    blob_path(sha256(flipped)).write_bytes(bytes(damaged))

    # The size gives the first away; only re-hashing finds the second.
    assert _kinds(consistency.storage_check()) == {"blob_corrupt": [sha256(truncated)]}
    report = consistency.storage_check(verify_digests=True)
    assert sorted(_kinds(report)["blob_corrupt"]) == sorted([sha256(truncated), sha256(flipped)])
    assert report.of("blob_corrupt")[0].detail["size"] == 4000

    report = consistency.storage_check(repair=True, verify_digests=True)
    assert len(report.problems) == 2  # the bytes are gone now: still needed, still missing
    quarantined = sorted(p.name for p in (Path(settings.STORAGE_DIR) / "quarantine").rglob("*") if p.is_file())
    assert len(quarantined) == 2
    assert not path.exists()
    assert {f.kind for f in consistency.storage_check().findings} == {"blob_missing"}

    # Manifests still link the blobs, so HEAD answers 200 and a client would not upload them;
    # unlinking makes the push store them again.
    consistency.storage_check(repair=True, unlink_missing=True)
    as_alice.push_image("alice/app", "latest", image)
    report = consistency.storage_check(verify_digests=True)
    assert report.problems == [] and report.checked["quarantined"] == 2
    assert_pulls_intact(as_alice, "alice/app", image)


def test_orphans_past_the_grace_period_are_deleted_and_young_ones_kept(as_alice, repo):
    image = _push(as_alice, "latest", layer("kept", 1000))
    orphan = b"bytes no row names"
    plant(f"blobs/sha256/{sha256(orphan)[7:9]}/{sha256(orphan)[7:]}", orphan)
    young = b"a blob being published right now"
    plant(f"blobs/sha256/{sha256(young)[7:9]}/{sha256(young)[7:]}", young, old=False)
    plant("uploads/mono-dead-process", b"half an upload")
    plant("uploads/0f8e2cbb-0000-4000-8000-000000000000", b"a session's bytes, row lost")
    plant("uploads/0f8e2cbb-0000-4000-8000-000000000000.lock", b"")
    plant("uploads/mono-streaming-now", b"still arriving", old=False)
    plant("squash/ab/abcdef-stale.tar", b"a squashed image whose row is gone")
    plant("squash/cd/cdef01-young.tar", b"being published", old=False)
    packages = Path(settings.BUILD_PACKAGE_DIR)
    plant("5e0a9f3c-1111-4222-8333-444455556666", b"FROM scratch\n", root=packages)
    plant("logs/9a1b2c3d-1111-4222-8333-444455556666.jsonl.gz", b"\x1f\x8b old log", root=packages)
    plant("tmp/spool-in-progress", b"spooling", root=packages)  # not ours to judge
    plant("notes.txt", b"an operator's file")

    status, out = run_command("storage_check", "--json")
    assert status == 1
    report = json.loads(out)
    problems = sorted((f["kind"], f["name"]) for f in report["findings"] if f["problem"])
    assert problems == sorted(
        [
            ("blob_orphan", sha256(orphan)),
            ("upload_orphan", "mono-dead-process"),
            ("upload_orphan", "0f8e2cbb-0000-4000-8000-000000000000"),
            ("squash_orphan", "squash/ab/abcdef-stale.tar"),
            ("package_orphan", "5e0a9f3c-1111-4222-8333-444455556666"),
            ("log_orphan", "9a1b2c3d-1111-4222-8333-444455556666"),
        ]
    )
    notes = sorted((f["kind"], f["name"]) for f in report["findings"] if not f["problem"])
    assert notes == sorted(
        [
            ("blob_orphan", sha256(young)),
            ("upload_orphan", "mono-streaming-now"),
            ("squash_orphan", "squash/cd/cdef01-young.tar"),
            ("unknown", "notes.txt"),
        ]
    )

    status, out = run_command("storage_check", "--repair")
    assert status == 0, out
    storage = Path(settings.STORAGE_DIR)
    assert not blob_path(sha256(orphan)).exists() and blob_path(sha256(young)).exists()
    assert sorted(p.name for p in (storage / "uploads").iterdir()) == ["mono-streaming-now"]
    assert sorted(p.name for p in (storage / "squash").rglob("*.tar")) == ["cdef01-young.tar"]
    assert sorted(p.relative_to(packages).as_posix() for p in packages.rglob("*") if p.is_file()) == [
        "tmp/spool-in-progress"
    ]
    assert (storage / "notes.txt").exists()

    status, out = run_command("storage_check")
    assert status == 0 and "Clean." in out
    assert_pulls_intact(as_alice, "alice/app", image)


def test_rows_that_name_nothing_and_that_nothing_needs_are_deleted(as_alice, repo, alice):
    unlinked = layer("unlinked", 700)
    image = _push(as_alice, "latest", layer("kept", 700))
    services.blob_upload_monolithic(
        repository=repo, digest=sha256(unlinked), stream=io.BytesIO(unlinked), length=len(unlinked)
    )
    services.blob_unlink(repository=repo, digest=sha256(unlinked), principal=user_principal(alice), ip=None)
    blob_path(sha256(unlinked)).unlink()
    manifest = repo.manifests.get()
    squash = SquashedImage.objects.create(
        repository=repo,
        manifest=manifest,
        tag="latest",
        host="testserver",
        state=SquashedImage.State.READY,
        storage_name="squash/ee/eeee-gone.tar",
    )
    package = BuildPackage.objects.create(owner=alice, uploaded=timezone.now(), size=5)

    report = consistency.storage_check()
    assert _kinds(report) == {
        "blob_missing": [sha256(unlinked)],
        "squash_missing": ["squash/ee/eeee-gone.tar"],
        "package_missing": [str(package.uuid)],
    }
    assert report.affected == []  # no manifest needs the unlinked blob

    report = consistency.storage_check(repair=True)
    assert report.problems == []
    assert not Blob.objects.filter(digest=sha256(unlinked)).exists()
    assert not SquashedImage.objects.filter(pk=squash.pk).exists()
    assert not BuildPackage.objects.filter(pk=package.pk).exists()
    assert consistency.storage_check().findings == []
    assert_pulls_intact(as_alice, "alice/app", image)


def test_a_push_holding_the_digest_is_never_raced(as_alice, repo, alice):
    """An orphan whose digest a push is publishing (holding its lock, about to record the row)
    is left alone; the push then keeps those bytes as the blob's and nothing is lost."""
    data = layer("contested", 3000)
    digest = sha256(data)
    plant(f"blobs/sha256/{digest[7:9]}/{digest[7:]}", data)
    later = timezone.now() + timedelta(hours=3)

    with digest_held_elsewhere(digest):
        report = consistency.storage_check(repair=True, now=later)
    (finding,) = report.findings
    assert finding.kind == "blob_orphan" and finding.open and "holds its lock" in finding.repair
    assert blob_path(digest).read_bytes() == data

    # The push goes on: finds the bytes stored, keeps them, records and links the row.
    image = image_of("contested", data)
    as_alice.push_image("alice/app", "latest", image)
    report = consistency.storage_check(repair=True, now=later)
    assert report.findings == [] and report.problems == []
    assert RepositoryBlob.objects.filter(repository=repo, blob__digest=digest).exists()
    assert_pulls_intact(as_alice, "alice/app", image)


def test_an_orphan_whose_row_a_push_recorded_after_the_check_is_kept(as_alice, repo):
    """Between the listing that found the orphan and its repair, a push of the same content kept
    those bytes and recorded their row: the repair looks again and leaves them."""
    data = layer("adopted", 2500)
    digest = sha256(data)
    plant(f"blobs/sha256/{digest[7:9]}/{digest[7:]}", data)
    report = consistency.storage_check(now=timezone.now() + timedelta(hours=3))
    assert [(f.kind, f.name, f.open) for f in report.findings] == [("blob_orphan", digest, True)]

    image = as_alice.push_image("alice/app", "latest", image_of("adopted", data))
    consistency.storage_repair(report)
    assert report.findings[0].repair == "kept: a row was recorded meanwhile" and report.problems == []
    assert blob_path(digest).read_bytes() == data
    assert_pulls_intact(as_alice, "alice/app", image)


def test_a_stale_row_is_not_deleted_while_a_push_of_its_digest_runs(as_alice, repo, alice):
    data = layer("republished", 900)
    services.blob_upload_monolithic(
        repository=repo, digest=sha256(data), stream=io.BytesIO(data), length=len(data)
    )
    services.blob_unlink(repository=repo, digest=sha256(data), principal=user_principal(alice), ip=None)
    blob_path(sha256(data)).unlink()
    with digest_held_elsewhere(sha256(data)):
        report = consistency.storage_check(repair=True)
    assert [f.kind for f in report.problems] == ["blob_missing"]
    assert Blob.objects.filter(digest=sha256(data)).exists()
