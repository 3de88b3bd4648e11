"""Fixtures and helpers shared by the build API, service and package tests.

The REST cast comes from tests/registry_rest/conftest.py (``world``: acme/app administered by
alice, bob a reader through team devs, eve an admin of another organization globex, root a
superuser, robots acme+bot and globex+bot). ``builds_on`` switches builds on the way a superuser
does; packages go to a per-test directory.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import tarfile
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import crypto
from builds import services
from builds.models import Build, BuildPackage
from registry.models import RepositoryAccessToken, Role
from tests.notifications.receivers import Receiver, Reply
from tests.registry_rest.conftest import Api, as_principal, problem, world

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]
DOCKERFILE = b"FROM scratch\nCOPY hello /hello\n"

__all__ = [
    "Api",
    "DOCKERFILE",
    "LOOPBACK",
    "Receiver",
    "Reply",
    "as_principal",
    "problem",
    "world",
]


@pytest.fixture(autouse=True)
def package_dir(settings, tmp_path):
    """Each test stores its build packages and log archives in its own directory."""
    settings.BUILD_PACKAGE_DIR = tmp_path / "build-packages"
    settings.FEATURE_BUILD_SUPPORT = None
    settings.BUILDER_REGISTRATION_SECRET = ""
    return settings.BUILD_PACKAGE_DIR


@pytest.fixture
def builds_on(db):
    """Builds switched on in the superuser's settings (the environment leaves it to them)."""
    return services.build_settings_update(enabled=True)


@pytest.fixture
def file_server(settings):
    """A local HTTP server on 127.0.0.1 that the outbound guard is told to allow."""
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    server = Receiver()
    yield server
    server.stop()


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def plain_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def gzip_of(data: bytes) -> bytes:
    return gzip.compress(data)


def upload(api: Api, data: bytes, mime_type: str = "application/octet-stream"):
    """POST /filedrop/ then PUT the bytes; returns (file_id, PUT response)."""
    response = api.post("filedrop/", {"mimeType": mime_type})
    assert response.status_code == 200, response.content
    body = response.json()
    path = body["url"].removeprefix("http://testserver")
    put = api.client.put(path, data=data, content_type=mime_type, **api.headers)
    return body["file_id"], put


def uploaded_package(user, data: bytes) -> BuildPackage:
    """A package uploaded through the services, for tests that do not exercise the API."""
    package = services.package_create(owner=user, mime_type="application/octet-stream")
    return services.package_upload(package=package, stream=io.BytesIO(data), length=len(data))


def queued_build(world, data: bytes = DOCKERFILE, **kwargs) -> Build:
    package = uploaded_package(world.alice, data)
    return services.build_create(
        repository=kwargs.pop("repository", world.app), principal=as_principal(world.alice), package=package, **kwargs
    )


def job_token(build: Build, *, expires_in: timedelta = timedelta(hours=1)) -> str:
    """Give a build a job token the way the manager does (a write token on its repository)."""
    code = crypto.random_token(40)
    token = RepositoryAccessToken.objects.create(
        repository=build.repository,
        friendly_name=f"build {build.uuid}",
        code_prefix=code[: RepositoryAccessToken.PREFIX_LENGTH],
        code_hash=crypto.token_hash(code),
        role=Role.WRITE,
        expiration=timezone.now() + expires_in,
    )
    Build.objects.filter(pk=build.pk).update(access_token=token)
    build.access_token = token
    return code
