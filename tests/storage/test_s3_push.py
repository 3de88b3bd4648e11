"""Pushing and pulling through the /v2/ API with blobs on S3 (moto's server)."""

import pytest
import requests

from registry.storage import blob_name
from tests.storage.helpers import digest_of, image_manifest

REPO = "alice/app"
SCOPE = f"repository:{REPO}:pull,push"
OCTETS = "application/octet-stream"


@pytest.fixture
def client(alice, registry_client):
    return registry_client("alice", "password-123")


def push_blob_in_chunks(client, data: bytes, chunk_size: int, digest: str | None = None):
    """POST, a PATCH per chunk but the last, PUT with the last chunk; returns the PUT response."""
    response = client.request("POST", f"/v2/{REPO}/blobs/uploads/", SCOPE)
    assert response.status_code == 202, response.content
    location = response["Location"]
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    offset = 0
    for chunk in chunks[:-1]:
        response = client.request(
            "PATCH",
            location,
            SCOPE,
            data=chunk,
            content_type=OCTETS,
            HTTP_CONTENT_RANGE=f"{offset}-{offset + len(chunk) - 1}",
        )
        assert response.status_code == 202, response.content
        offset += len(chunk)
        assert response["Range"] == f"0-{offset - 1}"
    last = chunks[-1]
    return client.request(
        "PUT",
        f"{location}?digest={digest or digest_of(data)}",
        SCOPE,
        data=last,
        content_type=OCTETS,
        HTTP_CONTENT_RANGE=f"{offset}-{offset + len(last) - 1}",
    )


def test_a_chunked_push_and_pull_go_through_presigned_s3_urls(client, s3):
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = bytes(range(256)) * 1200  # 300 KiB in 7 chunks
    for blob in (config, layer):
        response = push_blob_in_chunks(client, blob, 50 * 1024)
        assert response.status_code == 201, response.content
        assert response["Docker-Content-Digest"] == digest_of(blob)
    manifest = image_manifest(config, [layer])
    response = client.request(
        "PUT",
        f"/v2/{REPO}/manifests/v1",
        SCOPE,
        data=manifest,
        content_type="application/vnd.oci.image.manifest.v1+json",
    )
    assert response.status_code == 201, response.content

    assert s3.keys() == sorted([blob_name(digest_of(config)), blob_name(digest_of(layer))])

    response = client.request("GET", f"/v2/{REPO}/blobs/{digest_of(layer)}", SCOPE)
    assert response.status_code == 307
    assert response["Docker-Content-Digest"] == digest_of(layer)
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint}/{s3.name}/{blob_name(digest_of(layer))}?")
    pulled = requests.get(location, timeout=10)
    assert pulled.status_code == 200
    assert pulled.content == layer
    assert digest_of(pulled.content) == digest_of(layer)

    response = client.request("HEAD", f"/v2/{REPO}/blobs/{digest_of(layer)}", SCOPE)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(layer))
    assert response["Docker-Content-Digest"] == digest_of(layer)
    assert "Location" not in response

    response = client.request("GET", f"/v2/{REPO}/manifests/v1", SCOPE)
    assert response.status_code == 200
    assert response.content == manifest


def test_a_monolithic_push_lands_in_the_bucket(client, s3):
    data = b"monolithic blob body"
    response = client.request(
        "POST", f"/v2/{REPO}/blobs/uploads/?digest={digest_of(data)}", SCOPE, data=data, content_type=OCTETS
    )
    assert response.status_code == 201, response.content

    assert s3.get(blob_name(digest_of(data))) == data
    assert s3.keys("uploads/") == []


def test_a_digest_mismatch_stores_nothing_in_the_bucket(client, s3):
    data = b"x" * 100_000
    wrong = digest_of(b"something else")

    response = push_blob_in_chunks(client, data, 30_000, digest=wrong)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert s3.keys() == []
    for digest in (wrong, digest_of(data)):
        response = client.request("HEAD", f"/v2/{REPO}/blobs/{digest}", SCOPE)
        assert response.status_code == 404


def test_pushing_a_blob_twice_keeps_one_object(client, s3):
    data = b"same bytes twice"
    for _ in range(2):
        assert push_blob_in_chunks(client, data, 5).status_code == 201

    assert s3.keys() == [blob_name(digest_of(data))]
    assert s3.get(blob_name(digest_of(data))) == data


def test_a_cancelled_upload_leaves_no_parts(client, s3):
    response = client.request("POST", f"/v2/{REPO}/blobs/uploads/", SCOPE)
    location = response["Location"]
    response = client.request("PATCH", location, SCOPE, data=b"abandoned", content_type=OCTETS)
    assert response.status_code == 202
    assert len(s3.keys("uploads/")) == 1

    response = client.request("DELETE", location, SCOPE)

    assert response.status_code == 204
    assert s3.keys() == []
