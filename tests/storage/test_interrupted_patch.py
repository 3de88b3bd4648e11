"""A PATCH whose client goes away mid-body commits nothing; the session carries on from the
last committed offset, on either backend."""

from pathlib import Path

import pytest

from registry.models import Blob, UploadSession
from registry.storage import S3BlobStore, get_blob_store
from tests.storage.helpers import EndsEarly, digest_of

REPO = "alice/crash"
SCOPE = f"repository:{REPO}:pull,push"
OCTETS = "application/octet-stream"


@pytest.fixture(params=["filesystem", "s3"])
def backend(request):
    if request.param == "s3":
        request.getfixturevalue("s3")
    return request.param


@pytest.fixture
def client(alice, registry_client):
    return registry_client("alice", "password-123")


def start_upload(client) -> str:
    response = client.request("POST", f"/v2/{REPO}/blobs/uploads/", SCOPE)
    assert response.status_code == 202
    return response["Location"]


def patch(client, location: str, data: bytes, offset: int):
    return client.request(
        "PATCH",
        location,
        SCOPE,
        data=data,
        content_type=OCTETS,
        HTTP_CONTENT_RANGE=f"{offset}-{offset + len(data) - 1}",
    )


def patch_cut_short(client, location: str, declared: int, sent: bytes, offset: int, error=None):
    """A PATCH declaring ``declared`` bytes whose body ends (or fails) after ``sent``."""
    return client.request(
        "PATCH",
        location,
        SCOPE,
        content_type=OCTETS,
        CONTENT_LENGTH=str(declared),
        HTTP_CONTENT_RANGE=f"{offset}-{offset + declared - 1}",
        **{"wsgi.input": EndsEarly(sent, error)},
    )


def status_range(client, location: str) -> str:
    response = client.request("GET", location, SCOPE)
    assert response.status_code == 204
    return response["Range"]


def session_of(location: str) -> UploadSession:
    return UploadSession.objects.get(pk=location.rsplit("/", 1)[1])


def test_a_body_ending_early_is_not_committed_and_the_upload_resumes(client, backend):
    data = bytes(range(256)) * 1000
    first, rest = data[:100_000], data[100_000:]
    location = start_upload(client)
    assert patch(client, location, first, 0).status_code == 202

    response = patch_cut_short(client, location, len(rest), rest[:70_000] + b"garbage!", 100_000)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "SIZE_INVALID"
    assert status_range(client, location) == f"0-{len(first) - 1}"
    assert session_of(location).offset == len(first)

    # Resuming past the committed offset (as if the torn bytes had counted) is refused.
    response = patch(client, location, rest[70_000:], 170_000)
    assert response.status_code == 416
    assert response["Range"] == f"0-{len(first) - 1}"

    assert patch(client, location, rest, 100_000).status_code == 202
    response = client.request("PUT", f"{location}?digest={digest_of(data)}", SCOPE)
    assert response.status_code == 201, response.content
    assert Blob.objects.get(digest=digest_of(data)).size == len(data)
    with get_blob_store().open_blob(digest_of(data)) as f:
        assert f.read() == data


def test_a_body_failing_mid_read_is_not_committed(client, backend):
    data = b"0123456789" * 20_000
    location = start_upload(client)
    assert patch(client, location, data[:50_000], 0).status_code == 202

    # Django reports a failing body read as UnreadablePostError, an OSError: a 500, nothing kept.
    with pytest.raises(OSError):
        patch_cut_short(client, location, 150_000, data[50_000:120_000], 50_000, ConnectionResetError())

    assert status_range(client, location) == "0-49999"
    assert patch(client, location, data[50_000:], 50_000).status_code == 202
    response = client.request("PUT", f"{location}?digest={digest_of(data)}", SCOPE)
    assert response.status_code == 201, response.content
    with get_blob_store().open_blob(digest_of(data)) as f:
        assert f.read() == data


def test_a_first_chunk_cut_short_leaves_an_empty_session(client, backend):
    data = b"abc" * 10_000
    location = start_upload(client)

    response = patch_cut_short(client, location, len(data), data[:1000], 0)

    assert response.status_code == 400
    assert session_of(location).offset == 0
    response = client.request("PUT", f"{location}?digest={digest_of(data)}", SCOPE, data=data, content_type=OCTETS)
    assert response.status_code == 201, response.content
    with get_blob_store().open_blob(digest_of(data)) as f:
        assert f.read() == data


def test_an_interrupted_s3_part_is_removed_at_once(client, s3):
    location = start_upload(client)
    assert patch(client, location, b"kept", 0).status_code == 202
    kept = s3.keys("uploads/")

    response = patch_cut_short(client, location, 5000, b"torn" * 100, 4)

    assert response.status_code == 400
    assert s3.keys("uploads/") == kept
    assert s3.keys("blobs/") == []


def test_completing_with_a_digest_of_torn_bytes_publishes_nothing(client, backend):
    data = b"committed part"
    torn = b" and a torn tail"
    location = start_upload(client)
    assert patch(client, location, data, 0).status_code == 202
    assert patch_cut_short(client, location, 1000, torn, len(data)).status_code == 400

    response = client.request("PUT", f"{location}?digest={digest_of(data + torn)}", SCOPE)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not get_blob_store().exists(digest_of(data + torn))
    assert not get_blob_store().exists(digest_of(data))
    assert not Blob.objects.exists()
    assert stored_files() == []


def stored_files() -> list[str]:
    """Every blob or upload byte the store holds (lock files aside)."""
    store = get_blob_store()
    if isinstance(store, S3BlobStore):
        return [obj.key for obj in store._bucket.objects.all()]
    root = Path(store.root)
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_completing_after_a_torn_patch_publishes_only_the_committed_bytes(client, backend):
    data = b"committed bytes only"
    location = start_upload(client)
    assert patch(client, location, data, 0).status_code == 202
    assert patch_cut_short(client, location, 4096, b"torn tail" * 50, len(data)).status_code == 400

    response = client.request("PUT", f"{location}?digest={digest_of(data)}", SCOPE)

    assert response.status_code == 201, response.content
    with get_blob_store().open_blob(digest_of(data)) as f:
        assert f.read() == data
    assert [name for name in stored_files() if "uploads" in name] == []
