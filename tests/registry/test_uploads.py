"""Blob uploads: monolithic, POST+PUT, chunked and streamed PATCHes, status, cancel, mounts, and
the errors that must leave nothing behind."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from registry import services
from registry.models import Blob, Repository, RepositoryBlob, Role, UploadSession
from tests.registry.conftest import assert_error, grant, sha256, store_blob, stored_files, user_principal

DATA = b"0123456789abcdefghijklmnopqrstuvwxyz" * 3  # 108 bytes


@pytest.fixture
def push(as_alice, repo):
    return as_alice.push("alice/app")


def start(client, push, name="alice/app"):
    response = client.post(f"/v2/{name}/blobs/uploads/", data=b"", content_type="application/octet-stream", **push)
    assert response.status_code == 202, response.content
    return response


def patch(client, location, data, push, content_range=None):
    extra = {"HTTP_CONTENT_RANGE": content_range} if content_range else {}
    return client.patch(location, data=data, content_type="application/octet-stream", **push, **extra)


def assert_blob_visible(client, push, digest, data, name="alice/app"):
    response = client.get(f"/v2/{name}/blobs/{digest}", **push)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data


def assert_nothing_stored(repository):
    assert not Blob.objects.exists()
    assert not RepositoryBlob.objects.filter(repository=repository).exists()
    assert stored_files()["blobs"] == []


def test_monolithic_post_with_digest(client, push, repo):
    digest = sha256(DATA)
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={digest}", data=DATA, content_type="application/octet-stream", **push
    )
    assert response.status_code == 201
    assert response["Location"] == f"/v2/alice/app/blobs/{digest}"
    assert response["Docker-Content-Digest"] == digest
    assert_blob_visible(client, push, digest, DATA)
    assert Blob.objects.get(digest=digest).size == len(DATA)
    assert not UploadSession.objects.exists()
    assert stored_files()["uploads"] == []


def test_post_then_put_with_the_body(client, push, repo):
    response = start(client, push)
    session_id = response["Docker-Upload-UUID"]
    assert response["Location"] == f"/v2/alice/app/blobs/uploads/{session_id}"
    assert response["Range"] == "0-0"
    assert response["Content-Length"] == "0"
    digest = sha256(DATA)
    response = client.put(
        f"{response['Location']}?digest={digest}", data=DATA, content_type="application/octet-stream", **push
    )
    assert response.status_code == 201
    assert response["Location"] == f"/v2/alice/app/blobs/{digest}"
    assert response["Docker-Content-Digest"] == digest
    assert_blob_visible(client, push, digest, DATA)
    assert not UploadSession.objects.exists()


def test_chunked_patches_with_content_range_then_put(client, push, repo):
    location = start(client, push)["Location"]
    for begin in range(0, len(DATA), 40):
        chunk = DATA[begin : begin + 40]
        response = patch(client, location, chunk, push, f"{begin}-{begin + len(chunk) - 1}")
        assert response.status_code == 202, response.content
        assert response["Range"] == f"0-{begin + len(chunk) - 1}"
        assert response["Location"] == location
    response = client.put(f"{location}?digest={sha256(DATA)}", **push)
    assert response.status_code == 201
    assert_blob_visible(client, push, sha256(DATA), DATA)


def test_the_last_chunk_may_come_with_the_put(client, push, repo):
    location = start(client, push)["Location"]
    assert patch(client, location, DATA[:50], push, "0-49").status_code == 202
    response = client.put(
        f"{location}?digest={sha256(DATA)}",
        data=DATA[50:],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"50-{len(DATA) - 1}",
        **push,
    )
    assert response.status_code == 201
    assert_blob_visible(client, push, sha256(DATA), DATA)


@pytest.mark.parametrize(
    ("content_range", "why"),
    [("10-19", "repeated"), ("30-39", "gapped"), ("0-9", "back to the start")],
)
def test_a_chunk_not_at_the_committed_offset_is_416_with_the_range(client, push, repo, content_range, why):
    location = start(client, push)["Location"]
    assert patch(client, location, DATA[:20], push, "0-19").status_code == 202
    begin, end = (int(x) for x in content_range.split("-"))
    response = patch(client, location, DATA[begin : end + 1], push, content_range)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response["Range"] == "0-19", why
    # The refused chunk changed nothing: the upload continues from the committed offset.
    assert UploadSession.objects.get().offset == 20
    assert patch(client, location, DATA[20:], push, f"20-{len(DATA) - 1}").status_code == 202
    assert client.put(f"{location}?digest={sha256(DATA)}", **push).status_code == 201
    assert_blob_visible(client, push, sha256(DATA), DATA)


def test_a_chunk_sent_before_the_first_one_is_416(client, push, repo):
    location = start(client, push)["Location"]
    response = patch(client, location, DATA[10:20], push, "10-19")
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response["Range"] == "0-0"
    assert UploadSession.objects.get().offset == 0


@pytest.mark.parametrize("content_range", ["0-4", "garbage", "5-2"])
def test_a_content_range_that_does_not_describe_the_body_is_416(client, push, repo, content_range):
    location = start(client, push)["Location"]
    response = patch(client, location, DATA[:10], push, content_range)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert UploadSession.objects.get().offset == 0


def test_streamed_patches_without_content_range(client, push, repo):
    location = start(client, push)["Location"]
    assert patch(client, location, DATA[:30], push).status_code == 202
    response = patch(client, location, DATA[30:], push)
    assert response.status_code == 202
    assert response["Range"] == f"0-{len(DATA) - 1}"
    assert client.put(f"{location}?digest={sha256(DATA)}", **push).status_code == 201
    assert_blob_visible(client, push, sha256(DATA), DATA)


def test_a_chunked_transfer_encoding_patch_is_read_to_its_end(client, push, repo):
    # Go clients stream PATCH bodies chunked, without Content-Length; the server de-chunks.
    location = start(client, push)["Location"]
    response = client.patch(
        location,
        content_type="application/octet-stream",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(DATA)},
        **push,
    )
    assert response.status_code == 202, response.content
    assert response["Range"] == f"0-{len(DATA) - 1}"
    assert client.put(f"{location}?digest={sha256(DATA)}", **push).status_code == 201
    assert_blob_visible(client, push, sha256(DATA), DATA)


def test_upload_status(client, push, repo):
    response = start(client, push)
    location, session_id = response["Location"], response["Docker-Upload-UUID"]
    response = client.get(location, **push)
    assert response.status_code == 204
    assert response["Range"] == "0-0"
    assert response["Docker-Upload-UUID"] == session_id
    assert response["Location"] == location
    patch(client, location, DATA[:25], push, "0-24")
    response = client.get(location, **push)
    assert response.status_code == 204
    assert response["Range"] == "0-24"


def test_a_cancelled_upload_is_unknown_and_its_bytes_are_gone(client, push, repo):
    location = start(client, push)["Location"]
    patch(client, location, DATA, push)
    assert stored_files()["uploads"] != []
    response = client.delete(location, **push)
    assert response.status_code == 204
    assert stored_files()["uploads"] == []
    assert not UploadSession.objects.exists()
    for method in ("get", "patch", "delete"):
        assert_error(getattr(client, method)(location, **push), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(f"{location}?digest={sha256(DATA)}", **push), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_nothing_stored(repo)


def test_put_without_digest_is_digest_invalid_and_publishes_nothing(client, push, repo):
    location = start(client, push)["Location"]
    patch(client, location, DATA, push)
    response = client.put(location, **push)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_nothing_stored(repo)
    # A request without a digest is refused before it touches the upload: the client may retry.
    assert client.put(f"{location}?digest={sha256(DATA)}", **push).status_code == 201


def test_put_with_a_wrong_digest_removes_the_session_and_its_bytes(client, push, repo):
    location = start(client, push)["Location"]
    patch(client, location, DATA, push)
    response = client.put(f"{location}?digest={sha256(b'something else')}", **push)
    assert_error(response, 400, "DIGEST_INVALID")
    assert response.json()["errors"][0]["detail"]["actual"] == sha256(DATA)
    assert_nothing_stored(repo)
    assert not UploadSession.objects.exists()
    assert stored_files()["uploads"] == []
    assert_error(client.get(location, **push), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.head(f"/v2/alice/app/blobs/{sha256(b'something else')}", **push), 404, "BLOB_UNKNOWN")


def test_monolithic_post_with_a_wrong_digest_stores_nothing(client, push, repo):
    wrong = sha256(b"other")
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={wrong}", data=DATA, content_type="application/octet-stream", **push
    )
    assert_error(response, 400, "DIGEST_INVALID")
    assert_nothing_stored(repo)
    assert not UploadSession.objects.exists()
    assert stored_files()["uploads"] == []


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "0" * 32, "nocolon", "sha256:" + "g" * 64],
)
def test_a_malformed_or_unsupported_digest_is_digest_invalid(client, push, repo, digest):
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={digest}", data=DATA, content_type="application/octet-stream", **push
    )
    assert_error(response, 400, "DIGEST_INVALID")
    assert not UploadSession.objects.exists()
    location = start(client, push)["Location"]
    response = client.put(f"{location}?digest={digest}", data=DATA, content_type="application/octet-stream", **push)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_nothing_stored(repo)


def test_sha512_digests_are_verified_too(client, push, repo):
    digest = "sha512:" + hashlib.sha512(DATA).hexdigest()
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={digest}", data=DATA, content_type="application/octet-stream", **push
    )
    assert response.status_code == 201
    assert_blob_visible(client, push, digest, DATA)


def test_another_users_upload_session_is_unknown(client, as_alice, as_bob, bob, push, repo):
    grant(repo, bob, Role.WRITE)
    location = start(client, push)["Location"]
    patch(client, location, DATA[:10], push, "0-9")
    bob_push = as_bob.push("alice/app")
    assert_error(client.get(location, **bob_push), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch(client, location, DATA[10:], bob_push, "10-107"), 404, "BLOB_UPLOAD_UNKNOWN")
    response = client.put(f"{location}?digest={sha256(DATA[:10])}", content_type="application/octet-stream", **bob_push)
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location, **bob_push), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_nothing_stored(repo)
    # alice's session is untouched by all of that.
    assert UploadSession.objects.get().offset == 10
    assert client.get(location, **push)["Range"] == "0-9"


def test_an_upload_session_of_another_repository_is_unknown(client, as_alice, alice, push, repo):
    services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    session_id = start(client, push)["Docker-Upload-UUID"]
    other = as_alice.push("alice/other")
    assert_error(client.get(f"/v2/alice/other/blobs/uploads/{session_id}", **other), 404, "BLOB_UPLOAD_UNKNOWN")
    response = client.put(
        f"/v2/alice/other/blobs/uploads/{session_id}?digest={sha256(b'')}", content_type="text/plain", **other
    )
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_an_expired_or_malformed_upload_id_is_unknown(client, push, repo):
    location = start(client, push)["Location"]
    UploadSession.objects.update(expires=timezone.now() - timedelta(seconds=1))
    assert_error(client.get(location, **push), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.get("/v2/alice/app/blobs/uploads/not-a-uuid", **push), 404, "BLOB_UPLOAD_UNKNOWN")


def test_the_empty_blob(client, push, repo):
    empty = sha256(b"")
    response = client.post(
        f"/v2/alice/app/blobs/uploads/?digest={empty}", data=b"", content_type="application/octet-stream", **push
    )
    assert response.status_code == 201
    response = client.get(f"/v2/alice/app/blobs/{empty}", **push)
    assert response.status_code == 200
    assert response["Content-Length"] == "0"
    assert b"".join(response.streaming_content) == b""
    # Also through POST then PUT without any body.
    location = start(client, push)["Location"]
    assert client.put(f"{location}?digest={empty}", **push).status_code == 201
    assert Blob.objects.get(digest=empty).size == 0


def test_uploads_to_a_read_only_repository_are_denied(client, as_alice, push, repo):
    Repository.objects.filter(pk=repo.pk).update(state=Repository.State.READ_ONLY)
    path = f"/v2/alice/app/blobs/uploads/?digest={sha256(DATA)}"
    # A token issued before the switch still names push: the repository itself refuses.
    response = client.post(path, data=DATA, content_type="application/octet-stream", **push)
    assert_error(response, 403, "DENIED")
    # A new token no longer grants push.
    fresh = as_alice.push("alice/app")
    assert_error(client.post(path, data=DATA, content_type="application/octet-stream", **fresh), 401, "UNAUTHORIZED")
    assert_nothing_stored(repo)
    assert not UploadSession.objects.exists()


# ---------------------------------------------------------------------------------------------
# Cross-repository mounts


@pytest.fixture
def source(alice):
    """``alice/src`` (private) holding DATA."""
    repository = services.repository_create(namespace=alice.namespace, name="src", principal=user_principal(alice))
    store_blob(repository, DATA, user_principal(alice))
    return repository


def mount(client, headers, target, source_name, digest=None):
    digest = digest or sha256(DATA)
    path = f"/v2/{target}/blobs/uploads/?mount={digest}&from={source_name}"
    return client.post(path, data=b"", content_type="application/octet-stream", **headers)


def test_mount_from_a_repository_the_caller_can_pull(client, as_alice, source, repo):
    headers = as_alice.headers("repository:alice/app:pull,push", "repository:alice/src:pull")
    response = mount(client, headers, "alice/app", "alice/src")
    assert response.status_code == 201
    assert response["Location"] == f"/v2/alice/app/blobs/{sha256(DATA)}"
    assert response["Docker-Content-Digest"] == sha256(DATA)
    assert_blob_visible(client, headers, sha256(DATA), DATA)
    assert not UploadSession.objects.exists()


def test_mount_without_pull_on_the_source_falls_back_to_an_upload(client, as_bob, bob, source):
    headers = as_bob.headers("repository:bob/app:pull,push", "repository:alice/src:pull")
    response = mount(client, headers, "bob/app", "alice/src")
    assert response.status_code == 202
    assert response["Location"] == f"/v2/bob/app/blobs/uploads/{response['Docker-Upload-UUID']}"
    assert not RepositoryBlob.objects.filter(repository__name="app", repository__namespace__name="bob").exists()
    assert_error(client.head(f"/v2/bob/app/blobs/{sha256(DATA)}", **headers), 404, "BLOB_UNKNOWN")


def test_mount_needs_pull_in_the_token_not_just_the_right(client, as_alice, source, repo):
    # alice may pull alice/src, but this token does not say so: no mount.
    headers = as_alice.push("alice/app")
    assert mount(client, headers, "alice/app", "alice/src").status_code == 202
    assert not RepositoryBlob.objects.filter(repository=repo).exists()


def test_mount_of_a_blob_the_source_does_not_have_falls_back(client, as_alice, source, repo):
    headers = as_alice.headers("repository:alice/app:pull,push", "repository:alice/src:pull")
    response = mount(client, headers, "alice/app", "alice/src", sha256(b"not there"))
    assert response.status_code == 202
    assert not RepositoryBlob.objects.filter(repository=repo).exists()


def test_mount_from_a_missing_or_invalid_repository_falls_back(client, as_alice, source, repo):
    headers = as_alice.push("alice/app")
    assert mount(client, headers, "alice/app", "alice/nothing").status_code == 202
    assert mount(client, headers, "alice/app", "Not//Valid").status_code == 202
    assert not RepositoryBlob.objects.filter(repository=repo).exists()


def test_mount_from_a_public_repository_needs_no_pull_scope(client, as_bob, alice, source):
    Repository.objects.filter(pk=source.pk).update(visibility=Repository.Visibility.PUBLIC)
    headers = as_bob.push("bob/app")
    assert mount(client, headers, "bob/app", "alice/src").status_code == 201
    assert_blob_visible(client, headers, sha256(DATA), DATA, name="bob/app")


def test_mount_with_a_malformed_digest_is_digest_invalid(client, as_alice, source, repo):
    headers = as_alice.headers("repository:alice/app:pull,push", "repository:alice/src:pull")
    assert_error(mount(client, headers, "alice/app", "alice/src", "sha256:short"), 400, "DIGEST_INVALID")


def test_a_robot_upload_session_belongs_to_the_robot(client, alice, repo, make_robot):
    robot = make_robot(alice.namespace, "ci")
    grant(repo, robot.user, Role.WRITE)
    other = make_robot(alice.namespace, "other")
    grant(repo, other.user, Role.WRITE)
    location = start(client, robot.push("alice/app"))["Location"]
    assert client.get(location, **robot.push("alice/app")).status_code == 204
    assert_error(client.get(location, **other.push("alice/app")), 404, "BLOB_UPLOAD_UNKNOWN")
