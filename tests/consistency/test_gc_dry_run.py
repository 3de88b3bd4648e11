"""``manage.py gc --dry-run``: the counts of the pass that would run, and nothing removed."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from registry import gc
from registry.models import Blob, Manifest, RepositoryBlob, Tag
from tests.consistency.conftest import image_of, layer, run_command
from tests.gc.conftest import run_gc, stored_digests
from tests.registry.conftest import make_index

FIELDS = ("tags_expired", "tags_dropped", "manifests_deleted", "blob_links_deleted", "blobs_deleted", "bytes_freed")


def _rows() -> tuple:
    return (
        sorted(Tag.objects.values_list("pk", "lifetime_end")),
        sorted(Manifest.objects.values_list("pk", flat=True)),
        sorted(RepositoryBlob.objects.values_list("pk", flat=True)),
        sorted(Blob.objects.values_list("pk", flat=True)),
        stored_digests(),
    )


def test_the_dry_run_predicts_the_pass_and_removes_nothing(alice, repo, pusher):
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    common = layer("common", 2000)
    pusher.push(repo, "kept", image_of("kept", common))
    pusher.push(repo, "gone", image_of("gone", common, layer("gone", 5000)))
    pusher.untag(repo, "gone")
    # An index and its two children: the index goes in one round, its children in the next.
    children = [pusher.push(repo, f"child{i}", image_of(f"child{i}", layer(f"c{i}", 300))) for i in range(2)]
    index = pusher.push(repo, "multi", make_index(children))
    for i in range(2):
        pusher.untag(repo, f"child{i}")
    pusher.untag(repo, "multi")
    pusher.push(repo, "temporary", image_of("kept", common))  # a second tag on the kept image, expiring
    Tag.objects.filter(repository=repo, name="temporary").update(expiration=timezone.now() + timedelta(minutes=30))
    assert index.digest in set(Manifest.objects.values_list("digest", flat=True))

    later = timezone.now() + timedelta(hours=2)
    before = _rows()
    preview = gc.gc_preview(now=later)
    assert _rows() == before
    assert preview.pk is None  # not recorded as a run

    status, out = run_command("gc", "--dry-run")
    assert status == 0 and "dry run (nothing removed)" in out
    assert _rows() == before

    run = run_gc(timedelta(hours=2))
    assert run.manifests_deleted == 4 and run.tags_expired == 1 and run.blobs_deleted > 0
    assert {field: getattr(preview, field) for field in FIELDS} == {field: getattr(run, field) for field in FIELDS}
