"""Manifests: every supported kind by tag and by digest, byte-exact storage, subjects,
deletion, and every way a PUT can be refused without storing anything."""

import io
import json

import pytest

from registry import services
from registry.manifests import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registry.models import Manifest, Repository, Tag, UsageLog
from tests.registry.conftest import (
    EMPTY_CONFIG,
    HELM_CONFIG,
    OCI_LAYER,
    assert_error,
    descriptor,
    make_image,
    make_index,
    sha256,
    user_principal,
)

SBOM_TYPE = "application/spdx+json"


def _docker_list(caller):
    children = [make_image(seed, media_type=DOCKER_MANIFEST) for seed in ("amd", "arm")]
    for child in children:
        caller.push_image("alice/app", child.digest, child)
    return make_index(children, media_type=DOCKER_LIST)


def _oci_index(caller):
    children = [make_image(seed) for seed in ("amd", "arm", "s390x")]
    for child in children:
        caller.push_image("alice/app", child.digest, child)
    return make_index(children)


KINDS = {
    "docker-schema2": lambda caller: make_image("d", media_type=DOCKER_MANIFEST),
    "docker-manifest-list": _docker_list,
    "oci-image": lambda caller: make_image("o", layers=3),
    "oci-index": _oci_index,
    "artifact-config-type": lambda caller: make_image("helm", config_type=HELM_CONFIG),
    "artifact-type-empty-config": lambda caller: make_image(
        "sbom", config_type=EMPTY_CONFIG, artifact_type=SBOM_TYPE, layers=1
    ),
}


def assert_manifest_response(response, image, *, with_body=True):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == image.media_type
    assert response["Docker-Content-Digest"] == image.digest
    assert response["Content-Length"] == str(len(image.raw))
    assert response["ETag"] == f'"{image.digest}"'
    assert response.content == (image.raw if with_body else b"")


@pytest.mark.parametrize("kind", list(KINDS))
def test_put_get_head_by_tag_and_by_digest(client, as_alice, repo, kind):
    image = KINDS[kind](as_alice)
    headers = as_alice.push("alice/app")
    for blob in image.blobs:
        assert as_alice.upload_blob("alice/app", blob, headers).status_code == 201
    response = as_alice.put_manifest("alice/app", "v1", image.raw, image.media_type, headers)
    assert response.status_code == 201, response.content
    assert response["Location"] == f"/v2/alice/app/manifests/{image.digest}"
    assert response["Docker-Content-Digest"] == image.digest
    assert "OCI-Subject" not in response
    for reference in ("v1", image.digest):
        assert_manifest_response(client.get(f"/v2/alice/app/manifests/{reference}", **headers), image)
        assert_manifest_response(client.head(f"/v2/alice/app/manifests/{reference}", **headers), image, with_body=False)
    stored = Manifest.objects.get(repository=repo, digest=image.digest)
    assert bytes(stored.raw) == image.raw
    assert stored.media_type == image.media_type


def test_a_manifest_pushed_by_digest_is_reachable_by_digest_only(client, as_alice, repo):
    image = as_alice.push_image("alice/app", make_image().digest)
    headers = as_alice.pull("alice/app")
    assert_manifest_response(client.get(f"/v2/alice/app/manifests/{image.digest}", **headers), image)
    assert client.get("/v2/alice/app/tags/list", **headers).json()["tags"] == []


def test_artifacts_record_their_artifact_type(as_alice, repo):
    helm = as_alice.push_image("alice/app", "chart", make_image("helm", config_type=HELM_CONFIG))
    sbom = as_alice.push_image(
        "alice/app", "sbom", make_image("sbom", config_type=EMPTY_CONFIG, artifact_type=SBOM_TYPE)
    )
    assert Manifest.objects.get(digest=helm.digest).artifact_type == HELM_CONFIG
    assert Manifest.objects.get(digest=sbom.digest).artifact_type == SBOM_TYPE
    assert Manifest.objects.get(digest=sbom.digest).config_media_type == EMPTY_CONFIG


def test_an_artifact_without_layers_is_accepted(client, as_alice, repo):
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": descriptor(EMPTY_CONFIG, b"{}"),
        "layers": [],
    }
    raw = json.dumps(doc).encode()
    headers = as_alice.push("alice/app")
    as_alice.upload_blob("alice/app", b"{}", headers)
    assert as_alice.put_manifest("alice/app", "sig", raw, OCI_MANIFEST, headers).status_code == 201


def test_storage_is_byte_exact(client, as_alice, repo):
    image = make_image("exact")
    doc = image.doc
    # Unusual key order, tabs, spaces before colons, a trailing newline: kept as sent.
    layers, config = json.dumps(doc["layers"], indent=5), json.dumps(doc["config"])
    raw = (
        f'{{\n\t"layers" : {layers},\r\n   "config":{config} ,'
        f'"mediaType":   "{OCI_MANIFEST}",\n"schemaVersion":2\n}}\n\n'
    ).encode()
    headers = as_alice.push("alice/app")
    for blob in image.blobs:
        as_alice.upload_blob("alice/app", blob, headers)
    response = as_alice.put_manifest("alice/app", "odd", raw, OCI_MANIFEST, headers)
    assert response.status_code == 201
    assert response["Docker-Content-Digest"] == sha256(raw)
    for reference in ("odd", sha256(raw)):
        fetched = client.get(f"/v2/alice/app/manifests/{reference}", **headers)
        assert fetched.content == raw
        assert fetched["Docker-Content-Digest"] == sha256(raw)


def test_a_manifest_without_media_type_takes_it_from_its_fields(client, as_alice, repo):
    image = make_image("bare")
    doc = image.doc
    del doc["mediaType"]
    raw = json.dumps(doc).encode()
    headers = as_alice.push("alice/app")
    for blob in image.blobs:
        as_alice.upload_blob("alice/app", blob, headers)
    assert as_alice.put_manifest("alice/app", "bare", raw, "application/json", headers).status_code == 201
    response = client.get("/v2/alice/app/manifests/bare", **headers)
    assert response["Content-Type"] == OCI_MANIFEST


def test_foreign_layers_need_not_be_uploaded(client, as_alice, repo):
    image = make_image("win", media_type=DOCKER_MANIFEST)
    doc = image.doc
    doc["layers"].insert(
        0,
        {
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": sha256(b"windows base"),
            "size": 12,
            "urls": ["https://example.invalid/base.tar.gz"],
        },
    )
    raw = json.dumps(doc).encode()
    headers = as_alice.push("alice/app")
    for blob in image.blobs:
        as_alice.upload_blob("alice/app", blob, headers)
    assert as_alice.put_manifest("alice/app", "win", raw, DOCKER_MANIFEST, headers).status_code == 201


def test_put_with_a_subject_answers_oci_subject_even_if_the_subject_is_absent(client, as_alice, repo):
    subject = make_image("never-pushed")
    signature = make_image(
        "sig", config_type=EMPTY_CONFIG, artifact_type="application/vnd.example.sig", subject=subject
    )
    headers = as_alice.push("alice/app")
    for blob in signature.blobs:
        as_alice.upload_blob("alice/app", blob, headers)
    response = as_alice.put_manifest("alice/app", signature.digest, signature.raw, OCI_MANIFEST, headers)
    assert response.status_code == 201
    assert response["OCI-Subject"] == subject.digest
    assert Manifest.objects.get(digest=signature.digest).subject_digest == subject.digest


def test_delete_by_tag_removes_only_the_tag(client, as_alice, repo):
    image = as_alice.push_image("alice/app", "v1")
    as_alice.push_image("alice/app", "v2", image)
    headers = as_alice.delete("alice/app")
    response = client.delete("/v2/alice/app/manifests/v1", **headers)
    assert response.status_code == 202
    assert_error(client.get("/v2/alice/app/manifests/v1", **headers), 404, "MANIFEST_UNKNOWN")
    assert_manifest_response(client.get(f"/v2/alice/app/manifests/{image.digest}", **headers), image)
    assert_manifest_response(client.get("/v2/alice/app/manifests/v2", **headers), image)
    assert client.get("/v2/alice/app/tags/list", **headers).json()["tags"] == ["v2"]
    # Deleting it again: the tag is unknown now.
    assert_error(client.delete("/v2/alice/app/manifests/v1", **headers), 404, "MANIFEST_UNKNOWN")
    log = UsageLog.objects.get(kind=UsageLog.Kind.DELETE_TAG)
    assert log.metadata == {"tag": "v1"}


def test_delete_by_digest_removes_the_manifest_and_its_tags(client, as_alice, repo):
    image = as_alice.push_image("alice/app", "v1")
    as_alice.push_image("alice/app", "v2", image)
    other = as_alice.push_image("alice/app", "other", make_image("other"))
    headers = as_alice.delete("alice/app")
    response = client.delete(f"/v2/alice/app/manifests/{image.digest}", **headers)
    assert response.status_code == 202
    for reference in (image.digest, "v1", "v2"):
        assert_error(client.get(f"/v2/alice/app/manifests/{reference}", **headers), 404, "MANIFEST_UNKNOWN")
        assert_error(client.head(f"/v2/alice/app/manifests/{reference}", **headers), 404, "MANIFEST_UNKNOWN")
    assert client.get("/v2/alice/app/tags/list", **headers).json()["tags"] == ["other"]
    assert_manifest_response(client.get(f"/v2/alice/app/manifests/{other.digest}", **headers), other)
    assert_error(client.delete(f"/v2/alice/app/manifests/{image.digest}", **headers), 404, "MANIFEST_UNKNOWN")
    log = UsageLog.objects.get(kind=UsageLog.Kind.DELETE_MANIFEST)
    assert log.metadata == {"digest": image.digest, "tags": ["v1", "v2"]}


def test_a_manifest_listed_by_an_index_cannot_be_deleted_alone(client, as_alice, repo):
    index = _oci_index(as_alice)
    as_alice.push_image("alice/app", "multi", index)
    child = index.doc["manifests"][0]["digest"]
    headers = as_alice.delete("alice/app")
    assert_error(client.delete(f"/v2/alice/app/manifests/{child}", **headers), 400, "UNSUPPORTED")
    assert Manifest.objects.filter(digest=child).exists()
    assert client.delete(f"/v2/alice/app/manifests/{index.digest}", **headers).status_code == 202
    assert client.delete(f"/v2/alice/app/manifests/{child}", **headers).status_code == 202


# ---------------------------------------------------------------------------------------------
# Refused PUTs store nothing


@pytest.fixture
def uploaded(as_alice, repo):
    """An OCI image whose blobs are in alice/app, and a push token for it."""
    image = make_image("base")
    headers = as_alice.push("alice/app")
    for blob in image.blobs:
        assert as_alice.upload_blob("alice/app", blob, headers).status_code == 201
    return image, headers


def assert_nothing_stored(repo):
    assert not Manifest.objects.filter(repository=repo).exists()
    assert not Tag.objects.filter(repository=repo).exists()
    assert not UsageLog.objects.filter(repository=repo, kind=UsageLog.Kind.PUSH_REPO).exists()


def put(client, raw, content_type, headers, reference="v1"):
    return client.put(f"/v2/alice/app/manifests/{reference}", data=raw, content_type=content_type, **headers)


def test_a_manifest_over_the_limit_is_413(client, uploaded, repo, settings):
    image, headers = uploaded
    padding = b" " * (settings.MANIFEST_MAX_BYTES + 1 - len(image.raw))
    big = image.raw[:-1] + padding + image.raw[-1:]
    assert len(big) == 4 * 1024 * 1024 + 1
    assert_error(put(client, big, OCI_MANIFEST, headers), 413, "SIZE_INVALID")
    # Exactly at the limit is fine.
    at_limit = image.raw[:-1] + padding[1:] + image.raw[-1:]
    assert put(client, at_limit, OCI_MANIFEST, headers).status_code == 201


def test_a_chunked_manifest_body_over_the_limit_is_413(client, uploaded, repo, settings):
    image, headers = uploaded
    big = image.raw + b" " * settings.MANIFEST_MAX_BYTES
    response = client.put(
        "/v2/alice/app/manifests/v1",
        content_type=OCI_MANIFEST,
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(big)},
        **headers,
    )
    assert_error(response, 413, "SIZE_INVALID")
    assert_nothing_stored(repo)


def test_a_declared_length_over_the_limit_is_413_before_reading(client, uploaded, repo, settings):
    image, headers = uploaded
    response = client.put(
        "/v2/alice/app/manifests/v1",
        content_type=OCI_MANIFEST,
        CONTENT_LENGTH=str(settings.MANIFEST_MAX_BYTES + 1),
        **{"wsgi.input": io.BytesIO(image.raw)},
        **headers,
    )
    assert_error(response, 413, "SIZE_INVALID")
    assert_nothing_stored(repo)


def test_a_content_length_shorter_than_the_body_reads_only_that_much(client, uploaded, repo):
    image, headers = uploaded
    response = client.put(
        "/v2/alice/app/manifests/v1",
        content_type=OCI_MANIFEST,
        CONTENT_LENGTH="10",
        **{"wsgi.input": io.BytesIO(image.raw + b" " * (5 * 1024 * 1024))},
        **headers,
    )
    assert_error(response, 400, "MANIFEST_INVALID")
    assert_nothing_stored(repo)


def _with(image, **changes) -> bytes:
    doc = image.doc
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "case",
    [
        "not-json",
        "json-array",
        "layers-and-manifests",
        "schema-1",
        "schema-1-content-type",
        "no-schema-version",
        "docker-without-layers",
        "bad-descriptor-digest",
        "negative-size",
        "wrong-blob-size",
        "unknown-media-type",
        "index-without-manifests",
    ],
)
def test_an_invalid_manifest_is_manifest_invalid(client, uploaded, repo, case):
    image, headers = uploaded
    config = image.doc["config"]
    content_type = OCI_MANIFEST
    raw = {
        "not-json": lambda: b'{"schemaVersion": 2,',
        "json-array": lambda: b"[1, 2]",
        "layers-and-manifests": lambda: _with(image, manifests=[]),
        "schema-1": lambda: _with(image, schemaVersion=1, mediaType=None),
        "schema-1-content-type": lambda: json.dumps({"schemaVersion": 1, "name": "alice/app", "tag": "v1"}).encode(),
        "no-schema-version": lambda: _with(image, schemaVersion=None),
        "docker-without-layers": lambda: _with(image, mediaType=DOCKER_MANIFEST, layers=[]),
        "bad-descriptor-digest": lambda: _with(image, config={**config, "digest": "sha256:nope"}),
        "negative-size": lambda: _with(image, config={**config, "size": -1}),
        "wrong-blob-size": lambda: _with(image, config={**config, "size": config["size"] + 1}),
        "unknown-media-type": lambda: _with(image, mediaType="application/vnd.example.manifest+json"),
        "index-without-manifests": lambda: _with(image, mediaType=OCI_INDEX, layers=None, config=None),
    }[case]()
    if case == "schema-1-content-type":
        content_type = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    elif case in ("docker-without-layers",):
        content_type = DOCKER_MANIFEST
    elif case in ("unknown-media-type", "index-without-manifests"):
        content_type = "application/json"
    assert_error(put(client, raw, content_type, headers), 400, "MANIFEST_INVALID")
    assert_nothing_stored(repo)


def test_a_media_type_disagreeing_with_content_type_is_manifest_invalid(client, uploaded, repo):
    image, headers = uploaded
    response = put(client, image.raw, DOCKER_MANIFEST, headers)
    assert_error(response, 400, "MANIFEST_INVALID")
    assert response.json()["errors"][0]["detail"]["mediaType"] == OCI_MANIFEST
    assert_nothing_stored(repo)


def test_a_missing_blob_is_manifest_blob_unknown(client, uploaded, repo):
    image, headers = uploaded
    doc = image.doc
    doc["layers"].append({"mediaType": OCI_LAYER, "digest": sha256(b"never uploaded"), "size": 14})
    response = put(client, json.dumps(doc).encode(), OCI_MANIFEST, headers)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": sha256(b"never uploaded")}
    assert_nothing_stored(repo)


def test_a_blob_of_another_repository_is_manifest_blob_unknown(client, as_alice, alice, repo):
    other = services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    image = as_alice.push_image("alice/other", "v1")
    headers = as_alice.push("alice/app")
    assert_error(put(client, image.raw, OCI_MANIFEST, headers), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_nothing_stored(repo)
    assert Manifest.objects.filter(repository=other).count() == 1


def test_a_missing_child_manifest_is_manifest_blob_unknown(client, uploaded, repo):
    image, headers = uploaded
    index = make_index([image, make_image("absent")])
    response = put(client, index.raw, OCI_INDEX, headers)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_nothing_stored(repo)


@pytest.mark.parametrize("tag", ["-leading-dash", ".dot", "a" * 129, "has+plus", "t%C3%A4g"])
def test_an_invalid_tag_is_refused(client, uploaded, repo, tag):
    image, headers = uploaded
    response = put(client, image.raw, OCI_MANIFEST, headers, reference=tag)
    assert_error(response, 400, "MANIFEST_INVALID")
    assert_nothing_stored(repo)
    assert_error(client.get(f"/v2/alice/app/manifests/{tag}", **headers), 404, "MANIFEST_UNKNOWN")


def test_a_digest_reference_not_matching_the_body_is_digest_invalid(client, uploaded, repo):
    image, headers = uploaded
    response = put(client, image.raw, OCI_MANIFEST, headers, reference=sha256(b"something else"))
    assert_error(response, 400, "DIGEST_INVALID")
    assert response.json()["errors"][0]["detail"]["actual"] == image.digest
    assert_nothing_stored(repo)


def test_a_malformed_digest_reference_is_digest_invalid(client, uploaded, repo):
    image, headers = uploaded
    assert_error(put(client, image.raw, OCI_MANIFEST, headers, reference="sha256:abc"), 400, "DIGEST_INVALID")
    assert_error(client.get("/v2/alice/app/manifests/sha256:abc!", **headers), 400, "DIGEST_INVALID")
    assert_error(client.delete("/v2/alice/app/manifests/sha256:abc", **headers), 400, "DIGEST_INVALID")
    assert_nothing_stored(repo)


def test_a_layer_digest_is_not_a_manifest(client, as_alice, repo):
    image = as_alice.push_image("alice/app", "v1")
    headers = as_alice.pull("alice/app")
    for blob in image.blobs:
        assert_error(client.get(f"/v2/alice/app/manifests/{sha256(blob)}", **headers), 404, "MANIFEST_UNKNOWN")
        assert_error(client.head(f"/v2/alice/app/manifests/{sha256(blob)}", **headers), 404, "MANIFEST_UNKNOWN")


def test_an_unknown_tag_is_manifest_unknown(client, as_alice, repo):
    assert_error(client.get("/v2/alice/app/manifests/nope", **as_alice.pull("alice/app")), 404, "MANIFEST_UNKNOWN")


# ---------------------------------------------------------------------------------------------
# Application repositories


@pytest.fixture
def application(alice):
    return services.repository_create(
        namespace=alice.namespace, name="charts", principal=user_principal(alice), kind=Repository.Kind.APPLICATION
    )


@pytest.mark.parametrize("kind", ["docker-schema2", "oci-image"])
def test_an_application_repository_refuses_images(client, as_alice, application, kind):
    image = KINDS[kind](as_alice)
    headers = as_alice.push("alice/charts")
    for blob in image.blobs:
        as_alice.upload_blob("alice/charts", blob, headers)
    response = as_alice.put_manifest("alice/charts", "v1", image.raw, image.media_type, headers)
    assert_error(response, 400, "UNSUPPORTED")
    assert not Manifest.objects.filter(repository=application).exists()


def test_an_application_repository_refuses_an_index(client, as_alice, application):
    index = make_index([])
    response = as_alice.put_manifest("alice/charts", "multi", index.raw, OCI_INDEX)
    assert_error(response, 400, "UNSUPPORTED")
    assert not Manifest.objects.filter(repository=application).exists()


@pytest.mark.parametrize("kind", ["artifact-config-type", "artifact-type-empty-config"])
def test_an_application_repository_accepts_artifacts(client, as_alice, application, kind):
    image = KINDS[kind](as_alice)
    as_alice.push_image("alice/charts", "1.0.0", image)
    response = client.get("/v2/alice/charts/manifests/1.0.0", **as_alice.pull("alice/charts"))
    assert_manifest_response(response, image)
