"""Blob reads (GET, HEAD, Range) and blob deletion."""

import pytest

from registry import services
from registry.models import Blob, Repository, RepositoryBlob, UsageLog
from tests.registry.conftest import assert_error, sha256, store_blob, stored_files, user_principal

DATA = bytes(range(256)) * 4  # 1024 bytes
DIGEST = sha256(DATA)


@pytest.fixture
def blob_repo(alice, repo):
    store_blob(repo, DATA, user_principal(alice))
    return repo


@pytest.fixture
def pull(as_alice, blob_repo):
    return as_alice.pull("alice/app")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_get_returns_the_bytes_with_their_digest(client, pull):
    response = client.get(f"/v2/alice/app/blobs/{DIGEST}", **pull)
    assert response.status_code == 200
    assert body(response) == DATA
    assert response["Docker-Content-Digest"] == DIGEST
    assert response["Content-Length"] == str(len(DATA))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["ETag"] == f'"{DIGEST}"'
    assert response["Accept-Ranges"] == "bytes"
    assert "Content-Disposition" not in response


def test_head_returns_the_headers_without_a_body(client, pull):
    response = client.head(f"/v2/alice/app/blobs/{DIGEST}", **pull)
    assert response.status_code == 200
    assert response.content == b""
    assert response["Docker-Content-Digest"] == DIGEST
    assert response["Content-Length"] == str(len(DATA))


def test_head_of_a_missing_blob_sends_no_body_from_the_view(rf, pull):
    """The test client strips HEAD bodies itself, so ask the view directly: a server would drop
    the error body of a HEAD answer, with a warning for each one."""
    from django.urls import resolve

    path = f"/v2/alice/app/blobs/{sha256(b'missing')}"
    match = resolve(path)
    response = match.func(rf.head(path, **pull), *match.args, **match.kwargs)
    assert response.status_code == 404
    assert response.content == b""
    assert int(response["Content-Length"]) > 0  # what a GET's error body would measure


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, 1023),
        ("bytes=1000-5000", 1000, 1023),  # an end past the blob is clamped
        ("bytes=-24", 1000, 1023),  # suffix range: the last 24 bytes
        ("bytes=-5000", 0, 1023),  # a suffix longer than the blob is the whole blob
        ("bytes=1023-1023", 1023, 1023),
    ],
)
def test_a_range_is_answered_with_206(client, pull, header, start, end):
    response = client.get(f"/v2/alice/app/blobs/{DIGEST}", HTTP_RANGE=header, **pull)
    assert response.status_code == 206
    assert body(response) == DATA[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["Docker-Content-Digest"] == DIGEST


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_past_the_end_is_416(client, pull, header):
    response = client.get(f"/v2/alice/app/blobs/{DIGEST}", HTTP_RANGE=header, **pull)
    assert_error(response, 416, "BLOB_UNKNOWN")
    assert response["Content-Range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "lines=1-2", "bytes=9-3", "bytes=-"])
def test_a_range_we_do_not_serve_gets_the_whole_blob(client, pull, header):
    # RFC 9110 lets a server ignore a Range it does not support; it must not answer garbage.
    response = client.get(f"/v2/alice/app/blobs/{DIGEST}", HTTP_RANGE=header, **pull)
    assert response.status_code == 200
    assert body(response) == DATA


def test_a_blob_of_another_repository_is_unknown_here(client, as_alice, alice, blob_repo):
    services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    headers = as_alice.pull("alice/other")
    assert Blob.objects.filter(digest=DIGEST).exists()
    assert_error(client.get(f"/v2/alice/other/blobs/{DIGEST}", **headers), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/alice/other/blobs/{DIGEST}", **headers), 404, "BLOB_UNKNOWN")


def test_an_unknown_blob_is_blob_unknown(client, pull):
    response = client.get(f"/v2/alice/app/blobs/{sha256(b'nothing')}", **pull)
    assert_error(response, 404, "BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": sha256(b"nothing")}


@pytest.mark.parametrize("digest", ["sha256:1234", "latest", "sha256:" + "Z" * 64])
def test_a_malformed_digest_is_digest_invalid(client, pull, digest):
    assert_error(client.get(f"/v2/alice/app/blobs/{digest}", **pull), 400, "DIGEST_INVALID")


def test_anonymous_pull_of_a_public_blob_needs_no_token(client, blob_repo):
    Repository.objects.filter(pk=blob_repo.pk).update(visibility=Repository.Visibility.PUBLIC)
    response = client.get(f"/v2/alice/app/blobs/{DIGEST}")
    assert response.status_code == 200
    assert body(response) == DATA


def test_delete_unlinks_the_blob_from_the_repository(client, as_alice, alice, blob_repo):
    other = services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    store_blob(other, DATA, user_principal(alice))
    headers = as_alice.delete("alice/app")
    response = client.delete(f"/v2/alice/app/blobs/{DIGEST}", **headers)
    assert response.status_code == 202
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"
    assert_error(client.get(f"/v2/alice/app/blobs/{DIGEST}", **headers), 404, "BLOB_UNKNOWN")
    assert_error(client.delete(f"/v2/alice/app/blobs/{DIGEST}", **headers), 404, "BLOB_UNKNOWN")
    # Only the link goes: the other repository still serves the same bytes.
    assert not RepositoryBlob.objects.filter(repository=blob_repo).exists()
    response = client.get(f"/v2/alice/other/blobs/{DIGEST}", **as_alice.pull("alice/other"))
    assert body(response) == DATA
    assert stored_files()["blobs"] != []
    log = UsageLog.objects.get(kind=UsageLog.Kind.DELETE_BLOB)
    assert (log.actor, log.repository, log.metadata) == (alice, blob_repo, {"digest": DIGEST})


def test_delete_with_a_pull_only_token_is_refused(client, as_alice, blob_repo, pull):
    assert_error(client.delete(f"/v2/alice/app/blobs/{DIGEST}", **pull), 401, "UNAUTHORIZED")
    assert RepositoryBlob.objects.filter(repository=blob_repo).exists()
