"""Deleting a repository frees everything only it held, at once (no grace period), and nothing
that another repository still links."""

from __future__ import annotations

from registry import services
from registry.models import Blob, GarbageCollectionRun, Manifest, Repository, RepositoryBlob, Tag, UploadSession
from tests.gc.conftest import assert_pulls_intact, digests, image_of, layer, stored_digests
from tests.registry.conftest import make_index, sha256, stored_files, user_principal
from tests.registry_rest.conftest import Api


def test_deleting_a_repository_frees_what_only_it_held(
    alice, repo, pusher, as_alice, django_capture_on_commit_callbacks
):
    other = services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    common = layer("in both repositories")
    kept = pusher.push(other, "v1", image_of("other's", common))
    image = pusher.push(repo, "v1", image_of("app's", common, layer("app only")))
    children = [image_of("amd64", layer("c1")), image_of("arm64", layer("c2"))]
    for child in children:
        pusher.push(repo, child.digest, child)
    pusher.push(repo, "multi", make_index(children))
    pending = image_of("blobs without a manifest yet", layer("pending"))
    pusher.blobs(repo, pending)  # within the grace period: collected all the same
    headers = as_alice.push("alice/app")
    response = as_alice.client.post("/v2/alice/app/blobs/uploads/", **headers)
    as_alice.client.patch(response["Location"], data=b"partial", content_type="application/octet-stream", **headers)
    assert stored_files()["uploads"]
    app_only = (digests(image) | digests(children[0]) | digests(children[1]) | digests(pending)) - digests(kept)

    with django_capture_on_commit_callbacks(execute=True):
        response = Api(alice).delete("repository/alice/app")

    assert response.status_code == 204
    assert not Repository.objects.filter(pk=repo.pk).exists()
    assert not Manifest.objects.exclude(repository=other).exists()
    assert not Tag.objects.exclude(repository=other).exists()
    assert not RepositoryBlob.objects.exclude(repository=other).exists()
    assert not UploadSession.objects.exists()
    assert set(Blob.objects.values_list("digest", flat=True)) == digests(kept)
    assert stored_digests() == digests(kept)
    assert stored_files()["uploads"] == []
    run = GarbageCollectionRun.objects.get()
    assert run.trigger == GarbageCollectionRun.Trigger.REPOSITORY_DELETE and run.error == ""
    assert run.blobs_deleted == len(app_only)
    assert run.bytes_freed == sum(
        len(b) for i in (image, *children, pending) for b in i.blobs if sha256(b) in app_only
    )
    assert_pulls_intact(as_alice, "alice/other", kept)


def test_a_deleted_repositorys_blob_that_another_repository_links_keeps_its_bytes(
    alice, repo, pusher, as_alice, django_capture_on_commit_callbacks
):
    other = services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    image = pusher.push(repo, "v1", image_of("shared", layer("shared")))
    pusher.push(other, "v1", image)  # the very same image in both

    with django_capture_on_commit_callbacks(execute=True):
        services.repository_delete(repository=repo, principal=user_principal(alice), ip=None)

    run = GarbageCollectionRun.objects.get()
    assert (run.blobs_deleted, run.bytes_freed) == (0, 0)
    assert digests(image) <= stored_digests()
    assert_pulls_intact(as_alice, "alice/other", image)
