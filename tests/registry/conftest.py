"""Helpers for the /v2/ tests: a client that speaks token auth, image builders, and set-up
through the services (so a test exercises HTTP only for the behaviour it names)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts import services as account_services
from registry import services, usage
from registry.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registry.models import Repository, RepositoryPermission
from registry.permissions import Principal
from tests.conftest import PASSWORD, basic

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
EMPTY_JSON = b"{}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def error_codes(response) -> list[str]:
    """The codes of an OCI error body, checking its shape on the way."""
    body = response.json()
    assert set(body) == {"errors"}, body
    for error in body["errors"]:
        assert set(error) == {"code", "message", "detail"}, error
        assert isinstance(error["message"], str) and error["message"]
    return [error["code"] for error in body["errors"]]


def stored_files() -> dict[str, list[str]]:
    """Files of the blob store: published blobs, and upload files (with their lock files)."""
    root = Path(settings.STORAGE_DIR)
    return {
        area: sorted(str(p.relative_to(root / area)) for p in (root / area).rglob("*") if p.is_file())
        for area in ("blobs", "uploads")
    }


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.content)
    if response.request["REQUEST_METHOD"] == "HEAD":
        assert response.content == b""
    else:
        assert error_codes(response) == [code]
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"


class V2:
    """One caller of the registry: credentials (or none) and a Django test client.

    ``headers(*scopes)`` fetches a token for the scopes like docker does; every test that
    needs a token for a request gets it through the real token endpoint.
    """

    def __init__(self, username: str | None = None, password: str | None = None):
        self.username = username
        self.password = password
        self.client = Client()

    def token_response(self, *scopes: str):
        extra = {"HTTP_AUTHORIZATION": basic(self.username, self.password)} if self.username else {}
        query = "&".join(f"scope={s}" for s in scopes)
        return self.client.get(f"/v2/auth?service=testserver&{query}", **extra)

    def token(self, *scopes: str) -> str:
        response = self.token_response(*scopes)
        assert response.status_code == 200, response.content
        return response.json()["token"]

    def headers(self, *scopes: str) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token(*scopes)}"}

    def pull(self, name: str) -> dict:
        return self.headers(f"repository:{name}:pull")

    def push(self, name: str) -> dict:
        return self.headers(f"repository:{name}:pull,push")

    def delete(self, name: str) -> dict:
        return self.headers(f"repository:{name}:pull,push,delete")

    # -- HTTP shortcuts ------------------------------------------------------------------------

    def upload_blob(self, name: str, data: bytes, headers: dict | None = None):
        headers = headers if headers is not None else self.push(name)
        return self.client.post(
            f"/v2/{name}/blobs/uploads/?digest={sha256(data)}",
            data=data,
            content_type="application/octet-stream",
            **headers,
        )

    def put_manifest(self, name: str, reference: str, raw: bytes, media_type: str, headers: dict | None = None):
        headers = headers if headers is not None else self.push(name)
        return self.client.put(f"/v2/{name}/manifests/{reference}", data=raw, content_type=media_type, **headers)

    def push_image(self, name: str, reference: str, image: Image | None = None) -> Image:
        """Push the blobs and the manifest of ``image`` over HTTP with one push token."""
        image = image or make_image()
        headers = self.push(name)
        for blob in image.blobs:
            response = self.upload_blob(name, blob, headers)
            assert response.status_code == 201, response.content
        response = self.put_manifest(name, reference, image.raw, image.media_type, headers)
        assert response.status_code == 201, response.content
        return image


@dataclass
class Image:
    raw: bytes
    media_type: str
    blobs: list[bytes]

    @property
    def digest(self) -> str:
        return sha256(self.raw)

    @property
    def doc(self) -> dict:
        return json.loads(self.raw)


def descriptor(media_type: str, data: bytes, **extra) -> dict:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def make_image(
    seed: str = "a",
    *,
    media_type: str = OCI_MANIFEST,
    config_type: str | None = None,
    artifact_type: str | None = None,
    subject: Image | None = None,
    annotations: dict | None = None,
    layers: int = 1,
) -> Image:
    """An image (or artifact) manifest with a config and ``layers`` small distinct layers."""
    docker = media_type == DOCKER_MANIFEST
    if config_type is None:
        config_type = DOCKER_CONFIG if docker else OCI_CONFIG
    if config_type == EMPTY_CONFIG:
        config = EMPTY_JSON
    else:
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer_blobs = [f"layer {seed} {i}".encode() * 7 for i in range(layers)]
    layer_type = DOCKER_LAYER if docker else OCI_LAYER
    doc: dict = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = descriptor(config_type, config)
    doc["layers"] = [descriptor(layer_type, blob) for blob in layer_blobs]
    if subject is not None:
        doc["subject"] = descriptor(subject.media_type, subject.raw)
    if annotations:
        doc["annotations"] = annotations
    return Image(raw=json.dumps(doc, indent=2).encode(), media_type=media_type, blobs=[config, *layer_blobs])


def make_index(children: list[Image], *, media_type: str = OCI_INDEX) -> Image:
    platforms = [{"architecture": arch, "os": "linux"} for arch in ("amd64", "arm64", "s390x", "ppc64le")]
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            descriptor(child.media_type, child.raw, platform=platforms[i % len(platforms)])
            for i, child in enumerate(children)
        ],
    }
    return Image(raw=json.dumps(doc).encode(), media_type=media_type, blobs=[])


# The real flush, for tests to call in their own thread (the module attribute is stubbed below).
flush_pulls = usage.flush


def user_principal(user) -> Principal:
    return Principal(kind="robot" if user.is_robot else "user", user=user)


def store_blob(repository: Repository, data: bytes, principal: Principal) -> str:
    """Upload ``data`` into ``repository`` through the services (set-up, not under test)."""
    session = services.upload_start(repository=repository, principal=principal)
    blob = services.upload_complete(
        session=session, digest=sha256(data), stream=io.BytesIO(data), length=len(data), start=None
    )
    return blob.digest


def store_image(repository: Repository, reference: str, image: Image, principal: Principal) -> Image:
    for blob in image.blobs:
        store_blob(repository, blob, principal)
    services.manifest_put(
        repository=repository,
        reference=reference,
        raw=image.raw,
        content_type=image.media_type,
        principal=principal,
        ip=None,
    )
    return image


def grant(repository: Repository, user, role: str) -> None:
    RepositoryPermission.objects.create(repository=repository, user=user, role=role)


@pytest.fixture
def v2():
    """``v2(username, password)`` -> a V2 caller; ``v2()`` is anonymous."""
    return V2


@pytest.fixture
def as_alice(alice):
    return V2("alice", PASSWORD)


@pytest.fixture
def as_bob(bob):
    return V2("bob", PASSWORD)


@pytest.fixture
def anon(db):
    return V2()


@pytest.fixture
def repo(alice):
    """``alice/app``: private, image, owned by alice, empty."""
    return services.repository_create(namespace=alice.namespace, name="app", principal=user_principal(alice))


@pytest.fixture
def public_repo(alice):
    return services.repository_create(
        namespace=alice.namespace,
        name="public",
        principal=user_principal(alice),
        visibility=Repository.Visibility.PUBLIC,
    )


@pytest.fixture
def make_robot():
    def make(namespace, short_name: str) -> V2:
        user, token = account_services.robot_create(namespace=namespace, short_name=short_name)
        caller = V2(user.username, token)
        caller.user = user
        return caller

    return make
