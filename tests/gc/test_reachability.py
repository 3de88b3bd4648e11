"""What a pass keeps and what it frees, checked three ways: the rows, the files storage really
holds, and a pull over /v2/ of everything that must have stayed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from registry import services
from registry.models import GarbageCollectionRun, Manifest, ManifestChild, Repository, Tag
from tests.gc.conftest import (
    DAY,
    HOUR,
    MINUTE,
    Pusher,
    assert_pulls_intact,
    blob_rows,
    digests,
    image_of,
    layer,
    linked,
    manifests,
    run_gc,
    stored_digests,
)
from tests.registry.conftest import make_index, sha256, user_principal

SHARED = layer("shared by the subject and the keeper")


@dataclass
class World:
    alice: object
    pusher: Pusher
    repo: Repository
    subject: object
    keeper: object


def _tagged(w: World) -> None:
    w.pusher.push(w.repo, "subject", w.subject)


def _expiring(w: World) -> None:
    _tagged(w)
    Tag.objects.filter(repository=w.repo, name="subject").update(expiration=timezone.now() + DAY)


def _deleted(w: World) -> None:
    _tagged(w)
    w.pusher.untag(w.repo, "subject")


def _deleted_one_day_window(w: World) -> None:
    w.alice.namespace.time_machine_seconds = 86400
    w.alice.namespace.save()
    _deleted(w)


def _purged(w: World) -> None:
    _deleted(w)
    Tag.objects.filter(repository=w.repo, name="subject").update(purged=True)


def _by_digest(w: World) -> None:
    # A manifest pushed by digest is kept by a hidden temporary tag for TEMP_TAG_SECONDS.
    w.pusher.push(w.repo, w.subject.digest, w.subject)


def _untagged(w: World) -> None:
    # No time machine: once its tag is deleted only the grace period keeps the manifest.
    w.alice.namespace.time_machine_seconds = 0
    w.alice.namespace.save()
    _deleted(w)


CASES: dict[str, tuple[Callable[[World], None], timedelta, bool]] = {
    "alive tag": (_tagged, 30 * DAY, True),
    "tag before its expiration": (_expiring, 12 * HOUR, True),
    "expired tag in the window": (_expiring, 10 * DAY, True),
    "expired tag past the window": (_expiring, 16 * DAY, False),
    "deleted tag in the window": (_deleted, 13 * DAY, True),
    "deleted tag past the window": (_deleted, 15 * DAY, False),
    "deleted tag in a one-day window": (_deleted_one_day_window, 20 * HOUR, True),
    "deleted tag past a one-day window": (_deleted_one_day_window, 2 * DAY, False),
    "purged tag": (_purged, 2 * HOUR, False),
    "unexpired temporary tag": (_by_digest, 50 * MINUTE, True),
    "expired temporary tag": (_by_digest, 2 * HOUR, False),
    "no tag, within the grace period": (_untagged, 5 * MINUTE, True),
    "no tag, past the grace period": (_untagged, 2 * HOUR, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reachability_matrix(case, settings, alice, repo, pusher, as_alice):
    settings.GC_GRACE_SECONDS = 600
    setup, after, kept = CASES[case]
    keeper = pusher.push(repo, "keeper", image_of("keeper", SHARED, layer("keeper's own")))
    subject = image_of("subject", SHARED, layer("subject's own"))
    setup(World(alice, pusher, repo, subject, keeper))
    only_subject = digests(subject) - digests(keeper)
    assert only_subject <= stored_digests()

    run = run_gc(after)

    assert keeper.digest in manifests(repo)
    assert_pulls_intact(as_alice, "alice/app", keeper)
    assert digests(keeper) <= linked(repo) & blob_rows() & stored_digests()
    if kept:
        assert subject.digest in manifests(repo)
        assert digests(subject) <= linked(repo) & blob_rows() & stored_digests()
        assert_pulls_intact(as_alice, "alice/app", subject)
        assert (run.manifests_deleted, run.blobs_deleted, run.bytes_freed) == (0, 0, 0)
    else:
        assert subject.digest not in manifests(repo)
        assert not only_subject & (linked(repo) | blob_rows() | stored_digests())
        assert run.manifests_deleted == 1
        assert run.blob_links_deleted == len(only_subject)
        assert run.blobs_deleted == len(only_subject)
        assert run.bytes_freed == sum(len(b) for b in subject.blobs if sha256(b) in only_subject)
    # A second pass at the same moment finds nothing left to do.
    again = run_gc(after)
    assert (again.manifests_deleted, again.blob_links_deleted, again.blobs_deleted) == (0, 0, 0)


def test_an_expired_tag_ends_at_its_expiration_and_enters_the_time_machine(repo, pusher):
    pusher.push(repo, "v1", image_of("v1", layer("v1")))
    expiration = timezone.now() + HOUR
    Tag.objects.filter(repository=repo, name="v1").update(expiration=expiration)

    assert run_gc(30 * MINUTE).tags_expired == 0
    run = run_gc(2 * HOUR)

    assert run.tags_expired == 1 and run.tags_dropped == 0
    row = Tag.objects.get(repository=repo, name="v1")
    assert row.lifetime_end == expiration


def test_rows_past_the_window_are_dropped_and_rows_in_it_stay(alice, repo, pusher):
    for name in ("old", "recent", "alive"):
        pusher.push(repo, name, image_of(name, layer(name)))
    pusher.untag(repo, "old")
    Tag.objects.filter(repository=repo, name="old").update(lifetime_end=timezone.now() - 20 * DAY)
    pusher.untag(repo, "recent")

    run = run_gc()

    assert run.tags_dropped == 1
    assert set(Tag.objects.filter(repository=repo).values_list("name", flat=True)) == {"recent", "alive"}


def test_an_index_keeps_its_children_and_takes_them_along(alice, repo, pusher, as_alice):
    children = [image_of(f"child {i}", layer(f"child {i}")) for i in range(2)]
    for child in children:
        pusher.push(repo, child.digest, child)
    index = make_index(children)
    pusher.push(repo, "multi", index)

    run_gc(3 * HOUR)  # the children's temporary tags have expired: only the index keeps them

    assert manifests(repo) == {index.digest, *(c.digest for c in children)}
    for child in children:
        assert_pulls_intact(as_alice, "alice/app", child)

    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    pusher.untag(repo, "multi")
    run = run_gc(3 * HOUR)

    assert manifests(repo) == set()
    assert run.manifests_deleted == 3
    assert not (digests(children[0]) | digests(children[1])) & stored_digests()


def test_a_child_listed_by_a_kept_index_stays_when_another_index_goes(alice, repo, pusher, as_alice):
    shared_child, own_child = image_of("shared child", layer("a")), image_of("own child", layer("b"))
    for child in (shared_child, own_child):
        pusher.push(repo, child.digest, child)
    kept_index, dropped_index = make_index([shared_child]), make_index([shared_child, own_child])
    pusher.push(repo, "kept", kept_index)
    pusher.push(repo, "dropped", dropped_index)
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    pusher.untag(repo, "dropped")

    run = run_gc(3 * HOUR)

    assert manifests(repo) == {kept_index.digest, shared_child.digest}
    assert run.manifests_deleted == 2
    assert_pulls_intact(as_alice, "alice/app", shared_child)
    assert not digests(own_child) & stored_digests()
    assert ManifestChild.objects.filter(manifest__digest=kept_index.digest).count() == 1


def test_referrers_of_a_kept_image_stay_and_go_with_it(alice, repo, pusher, as_alice):
    image = pusher.push(repo, "v1", image_of("signed", layer("signed")))
    signature = image_of("signature", layer("sig"), subject=image, artifact_type="application/vnd.example.sig")
    sbom = image_of("sbom", layer("sbom"), subject=signature, artifact_type="application/vnd.example.sbom")
    orphan = image_of("orphan", layer("orphan"), subject=image_of("never pushed", layer("x")))
    for referrer in (signature, sbom, orphan):
        pusher.push(repo, referrer.digest, referrer)

    run = run_gc(3 * HOUR)

    # The signature (and the SBOM about the signature) stay with their kept subject; a referrer
    # whose subject is not stored has nothing to stay for.
    assert manifests(repo) == {image.digest, signature.digest, sbom.digest}
    assert run.manifests_deleted == 1
    assert not digests(orphan) & stored_digests()
    assert_pulls_intact(as_alice, "alice/app", signature)
    assert_pulls_intact(as_alice, "alice/app", sbom)

    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    pusher.untag(repo, "v1")
    run = run_gc(3 * HOUR)

    assert manifests(repo) == set()
    assert run.manifests_deleted == 3
    assert stored_digests() == set()


def test_a_blob_another_repository_links_keeps_its_row_and_bytes(org, alice, repo, pusher, as_alice):
    other = services.repository_create(namespace=org, name="other", principal=user_principal(alice))
    org.time_machine_seconds = 0
    org.save()
    common = layer("in both repositories")
    here = pusher.push(repo, "v1", image_of("here", common))
    there = pusher.push(other, "v1", image_of("there", common))
    pusher.untag(other, "v1")

    run = run_gc(2 * HOUR)

    assert manifests(other) == set() and linked(other) == set()
    assert sha256(common) in blob_rows() & stored_digests()
    assert run.blob_links_deleted == 2  # the common layer and the config of acme/other
    assert run.blobs_deleted == 1  # only the config: the common layer is still linked by alice/app
    assert_pulls_intact(as_alice, "alice/app", here)

    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    pusher.untag(repo, "v1")
    run_gc(2 * HOUR)

    assert stored_digests() == set() and blob_rows() == set()
    assert not digests(there) & stored_digests()


def test_uploaded_blobs_wait_for_the_default_grace_period(settings, repo, pusher):
    assert settings.GC_GRACE_SECONDS == 3600
    image = image_of("no manifest yet", layer("pending"))
    pusher.blobs(repo, image)

    run = run_gc(50 * MINUTE)
    assert run.blobs_deleted == 0
    assert digests(image) <= linked(repo) & blob_rows() & stored_digests()

    run = run_gc(70 * MINUTE)
    assert run.blob_links_deleted == 2 and run.blobs_deleted == 2
    assert run.bytes_freed == sum(len(b) for b in image.blobs)
    assert linked(repo) == blob_rows() == stored_digests() == set()


def test_the_grace_period_is_configurable(settings, repo, pusher):
    settings.GC_GRACE_SECONDS = 60
    image = image_of("short grace", layer("pending"))
    pusher.blobs(repo, image)

    assert run_gc(30 * MINUTE / 60).blobs_deleted == 0
    assert run_gc(2 * MINUTE).blobs_deleted == 2
    assert stored_digests() == set()


def test_a_manifest_created_within_the_grace_period_keeps_its_blobs(alice, repo, pusher):
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    image = pusher.push(repo, "v1", image_of("fresh", layer("fresh")))
    pusher.untag(repo, "v1")

    run = run_gc(30 * MINUTE)

    assert run.tags_dropped == 1  # no window: the ended row goes at once
    assert manifests(repo) == {image.digest}  # the grace period keeps the manifest
    assert digests(image) <= stored_digests()


def test_a_blob_unlinked_while_a_manifest_still_refers_to_it_keeps_its_row(repo, pusher, alice):
    image = pusher.push(repo, "v1", image_of("unlinked", layer("unlinked")))
    digest = sha256(image.blobs[1])
    services.blob_unlink(repository=repo, digest=digest, principal=user_principal(alice), ip=None)

    run = run_gc(2 * HOUR)

    assert run.blobs_deleted == 0
    assert digest in blob_rows() & stored_digests()


def test_a_repository_pass_leaves_other_repositories_alone(org, alice, repo, pusher):
    other = services.repository_create(namespace=org, name="other", principal=user_principal(alice))
    mine = image_of("mine", layer("mine"))
    theirs = image_of("theirs", layer("theirs"))
    pusher.blobs(repo, mine)
    pusher.blobs(other, theirs)

    run = run_gc(2 * HOUR, repository=other)

    assert run.repository == other
    assert run.blobs_deleted == 2
    assert digests(mine) <= stored_digests() and not digests(theirs) & stored_digests()


def test_a_pass_is_recorded_and_logged(caplog, alice, repo, pusher):
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    image = pusher.push(repo, "v1", image_of("logged", layer("logged", 1000)))
    pusher.untag(repo, "v1")

    with caplog.at_level(logging.INFO, logger="registry.gc"):
        run = run_gc(2 * HOUR)

    stored = GarbageCollectionRun.objects.get(pk=run.pk)
    freed = sum(len(b) for b in image.blobs)
    assert stored.trigger == "command" and stored.repository is None and stored.error == ""
    assert stored.started <= stored.finished
    assert (stored.tags_dropped, stored.manifests_deleted, stored.blob_links_deleted, stored.blobs_deleted) == (
        1,
        1,
        2,
        2,
    )
    assert stored.bytes_freed == freed
    messages = [r.getMessage() for r in caplog.records if r.name == "registry.gc"]
    assert f"deleted manifest alice/app@{image.digest}" in messages
    for blob in image.blobs:
        assert f"deleted blob {sha256(blob)} ({len(blob)} bytes)" in messages
    summary = messages[-1]
    assert summary.startswith("garbage collection (command): 0 tags expired, 1 tags dropped, 1 manifests, 2 blob links")
    assert f"{freed} bytes freed" in summary
    assert not Manifest.objects.exists()
