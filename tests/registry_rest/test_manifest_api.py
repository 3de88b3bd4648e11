"""Quay's manifest lookups: a manifest's bytes, layers with the config's history, size, config,
an index's platforms, and the labels of a manifest."""

from __future__ import annotations

import json

import pytest

from registry import services
from registry.manifests import DOCKER_MANIFEST
from registry.models import Manifest, Repository
from tests.registry.conftest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    EMPTY_CONFIG,
    OCI_CONFIG,
    OCI_LAYER,
    Image,
    descriptor,
    make_image,
    make_index,
    store_image,
)
from tests.registry_rest.conftest import as_principal, problem

HISTORY = [
    {"created": "2024-07-11T05:49:04.123456789Z", "created_by": "KIWI 10.0.21", "author": "Fedora Project"},
    {"created": "2024-07-12T10:00:00Z", "created_by": "/bin/sh -c #(nop) ENV A=1", "empty_layer": True},
    {"created": "2024-07-12T10:00:01+02:00", "created_by": "RUN make install", "comment": "buildkit.dockerfile.v0"},
]


def image_with_history(seed="h", *, media_type=None, labels=None, annotations=None, history=HISTORY) -> Image:
    docker = media_type == DOCKER_MANIFEST
    config = {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "created": "2024-07-12T10:00:02Z",
        "config": {
            "Env": ["PATH=/usr/bin", "A=1"],
            "Entrypoint": ["/app"],
            "Cmd": ["--serve"],
            "WorkingDir": "/srv",
            "User": "1000",
            "ExposedPorts": {"8080/tcp": {}, "443/tcp": {}},
            "Labels": labels or {},
        },
        "history": history,
        "seed": seed,
    }
    config_bytes = json.dumps(config).encode()
    layers = [f"{seed} base".encode() * 50, f"{seed} app".encode() * 20]
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type or "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config_bytes),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer) for layer in layers],
    }
    if annotations:
        doc["annotations"] = annotations
    return Image(raw=json.dumps(doc).encode(), media_type=doc["mediaType"], blobs=[config_bytes, *layers])


def store(world, image: Image, reference: str = "latest") -> Image:
    return store_image(world.app, reference, image, as_principal(world.alice))


def manifest_of(world, digest: str, who: str = "member"):
    return world.api(who).get(f"repository/acme/app/manifest/{digest}")


def test_an_image_manifest_with_its_layers_config_and_size(world):
    image = store(world, image_with_history())
    response = manifest_of(world, image.digest)
    assert response.status_code == 200, response.content
    body = response.json()
    stored = Manifest.objects.get(digest=image.digest)
    assert body["digest"] == image.digest and body["is_manifest_list"] is False
    assert body["manifest_data"] == image.raw.decode()
    assert body["media_type"] == image.media_type and body["config_media_type"] == OCI_CONFIG
    sizes = [len(blob) for blob in image.blobs[1:]]
    assert body["layers_compressed_size"] == body["size"] == sum(sizes) == stored.layers_size
    assert body["platforms"] is None
    base, app = body["layers"]
    assert base == {
        "index": 0,
        "compressed_size": sizes[0],
        "is_remote": False,
        "urls": None,
        "command": ["KIWI 10.0.21"],
        "comment": None,
        "author": "Fedora Project",
        "blob_digest": image.doc["layers"][0]["digest"],
        "created_datetime": "Thu, 11 Jul 2024 05:49:04 -0000",
    }
    # The empty-layer step (ENV) describes no layer; the next step is the second layer's.
    assert app["command"] == ["RUN make install"] and app["comment"] == "buildkit.dockerfile.v0"
    assert app["created_datetime"] == "Fri, 12 Jul 2024 08:00:01 -0000"
    assert body["config"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "created": "2024-07-12T10:00:02Z",
        "author": None,
        "env": ["PATH=/usr/bin", "A=1"],
        "entrypoint": ["/app"],
        "cmd": ["--serve"],
        "working_dir": "/srv",
        "user": "1000",
        "stop_signal": None,
        "exposed_ports": ["443/tcp", "8080/tcp"],
        "volumes": [],
        "labels": {},
    }


def test_history_that_does_not_match_the_layers_is_not_used(world):
    image = store(world, image_with_history(history=HISTORY[:1]))
    body = manifest_of(world, image.digest).json()
    assert [layer["command"] for layer in body["layers"]] == [None, None]
    assert [layer["blob_digest"] for layer in body["layers"]] == [d["digest"] for d in image.doc["layers"]]


def test_a_foreign_layer_is_remote_with_its_urls(world):
    config = json.dumps({"architecture": "amd64", "os": "windows", "history": []}).encode()
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": "sha256:" + "f" * 64,
        "size": 1234,
        "urls": ["https://mcr.example/layer"],
    }
    local = b"local layer" * 10
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [foreign, descriptor(DOCKER_LAYER, local)],
    }
    image = store(world, Image(raw=json.dumps(doc).encode(), media_type=DOCKER_MANIFEST, blobs=[config, local]))
    remote, here = manifest_of(world, image.digest).json()["layers"]
    assert remote["is_remote"] is True and remote["urls"] == ["https://mcr.example/layer"]
    assert remote["compressed_size"] == 1234 and here["is_remote"] is False


def test_an_index_with_its_platforms(world):
    children = [store(world, make_image(f"p{n}", layers=n + 1), f"c{n}") for n in range(2)]
    index = store(world, make_index(children), "multi")
    body = manifest_of(world, index.digest).json()
    assert body["is_manifest_list"] is True and body["layers"] is None and body["config"] is None
    sizes = [Manifest.objects.get(digest=c.digest).layers_size for c in children]
    assert body["layers_compressed_size"] == 0 and body["size"] == sum(sizes)
    assert body["platforms"] == [
        {
            "digest": child.digest,
            "media_type": child.media_type,
            "manifest_size": len(child.raw),
            "os": "linux",
            "architecture": arch,
            "variant": None,
            "os_version": None,
            "layers_compressed_size": size,
        }
        for child, arch, size in zip(children, ("amd64", "arm64"), sizes, strict=True)
    ]


def test_an_artifact_has_no_config_view(world):
    world.app.kind = Repository.Kind.APPLICATION
    world.app.save()
    artifact = store(world, make_image("chart", config_type=EMPTY_CONFIG, artifact_type="application/x.chart"))
    body = manifest_of(world, artifact.digest).json()
    assert body["config"] is None and body["config_media_type"] == EMPTY_CONFIG
    assert [layer["command"] for layer in body["layers"]] == [None]


@pytest.mark.parametrize("digest", ["sha256:" + "0" * 64, "not-a-digest"])
def test_an_unknown_manifest_is_not_found(world, digest):
    problem(manifest_of(world, digest), 404, "not_found")
    problem(world.api("member").get(f"repository/acme/app/manifest/{digest}/labels"), 404, "not_found")


def test_a_manifest_of_another_repository_is_not_found_here(world):
    other = services.repository_create(namespace=world.acme, name="other", principal=as_principal(world.alice))
    image = store_image(other, "latest", make_image("elsewhere"), as_principal(world.alice))
    problem(manifest_of(world, image.digest, who="admin"), 404, "not_found")


def test_public_manifests_are_readable_anonymously(world):
    image = store(world, make_image("pub"))
    problem(manifest_of(world, image.digest, who="anonymous"), 401, "invalid_token")
    world.app.visibility = Repository.Visibility.PUBLIC
    world.app.save()
    assert manifest_of(world, image.digest, who="anonymous").status_code == 200


# ---------------------------------------------------------------------------------------------
# Labels


def labels_of(world, digest: str, **params):
    response = world.api("member").get(f"repository/acme/app/manifest/{digest}/labels", **params)
    assert response.status_code == 200, response.content
    return response.json()["labels"]


def test_labels_come_from_the_config_and_the_oci_annotations(world):
    image = store(
        world,
        image_with_history(
            labels={"maintainer": "ops@acme", "quay.expires-after": "2w", "spec": '{"a": [1]}'},
            annotations={"org.opencontainers.image.source": "https://git.example/app", "maintainer": "dev@acme"},
        ),
    )
    found = labels_of(world, image.digest)
    assert [(label["key"], label["value"], label["media_type"]) for label in found] == [
        ("maintainer", "dev@acme", "text/plain"),
        ("org.opencontainers.image.source", "https://git.example/app", "text/plain"),
        ("quay.expires-after", "2w", "text/plain"),
        ("spec", '{"a": [1]}', "application/json"),
    ]
    assert {label["source_type"] for label in found} == {"manifest"}
    # Ids are stable between requests and distinct between labels.
    assert [label["id"] for label in labels_of(world, image.digest)] == [label["id"] for label in found]
    assert len({label["id"] for label in found}) == 4
    assert [label["key"] for label in labels_of(world, image.digest, filter="quay.")] == ["quay.expires-after"]


def test_a_docker_image_has_its_config_labels_and_an_index_none(world):
    docker = store(world, image_with_history("d", media_type=DOCKER_MANIFEST, labels={"a": "1"}), "docker")
    assert [(label["key"], label["value"]) for label in labels_of(world, docker.digest)] == [("a", "1")]
    children = [store(world, make_image("i1"), "i1")]
    index = store(world, make_index(children), "idx")
    assert labels_of(world, index.digest) == []
