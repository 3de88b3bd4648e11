"""/health/instance and /health/endtoend: Quay's JSON, 503 when a service fails, the failing
step named without leaking what an exception says, and the probe leaves nothing behind."""

from __future__ import annotations

import os
import socket

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from registry.storage import get_blob_store
from registry.tokens import signing_key
from tests.observability.conftest import expected_health

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    """A port of 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(path: str):
    response = Client().get(path)  # anonymous: load balancers send no credentials
    return response.json(), response.status_code


@pytest.mark.parametrize("depth", ["instance", "endtoend"])
def test_everything_up(settings, depth):
    assert _get(f"/health/{depth}") == expected_health(settings)


def test_endtoend_probe_leaves_no_file_in_storage(settings):
    assert _get("/health/endtoend")[1] == 200
    uploads = settings.STORAGE_DIR / "uploads"
    assert sorted(os.listdir(uploads)) == []
    assert not (settings.STORAGE_DIR / "blobs").exists()


def test_the_answer_is_never_cached(settings):
    response = Client().get("/health/instance")
    assert "no-cache" in response["Cache-Control"]
    assert Client().post("/health/instance").status_code == 405


@pytest.mark.parametrize("depth", ["instance", "endtoend"])
def test_storage_that_is_not_a_directory_fails_both(settings, tmp_path, depth):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.STORAGE_DIR = blocker / "storage"
    get_blob_store.cache_clear()
    note = {
        "instance": "storage: NotADirectoryError",
        "endtoend": "storage: the probe could not be written (NotADirectoryError)",
    }[depth]
    assert _get(f"/health/{depth}") == expected_health(settings, failed={"storage": note})


def test_storage_broken_under_a_running_process_fails_endtoend_only(settings):
    get_blob_store()  # the process has its store (and its upload directory) already
    uploads = settings.STORAGE_DIR / "uploads"
    uploads.rmdir()
    uploads.write_text("the upload directory replaced by a file")
    assert _get("/health/instance") == expected_health(settings)
    assert _get("/health/endtoend") == expected_health(
        settings, failed={"storage": "storage: the probe could not be written (NotADirectoryError)"}
    )


@pytest.mark.parametrize("depth", ["instance", "endtoend"])
def test_redis_that_does_not_answer_fails_and_its_password_stays_secret(settings, depth):
    settings.REDIS_URL = f"redis://:hunter2-secret@127.0.0.1:{_closed_port()}/0"
    response = Client().get(f"/health/{depth}")
    assert b"hunter2" not in response.content and b"127.0.0.1" not in response.content
    assert (response.json(), response.status_code) == expected_health(
        settings, failed={"redis": "redis: ConnectionError"}
    )


def test_a_replaced_signing_key_file_fails_endtoend_only(settings, tmp_path):
    signing_key()  # this process signs with the key of the configured file
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "other-key.pem"
    path.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings.REGISTRY_TOKEN_KEY_FILE = str(path)
    assert _get("/health/instance") == expected_health(settings)
    assert _get("/health/endtoend") == expected_health(
        settings, failed={"auth": "auth: the key file on disk is not the key this process signs with"}
    )


def test_an_unreadable_signing_key_file_fails_endtoend(settings, tmp_path):
    signing_key()
    path = tmp_path / "garbage.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    settings.REGISTRY_TOKEN_KEY_FILE = str(path)
    assert _get("/health/endtoend") == expected_health(settings, failed={"auth": "auth: ValueError"})


def test_two_services_down_are_both_reported(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.STORAGE_DIR = blocker / "storage"
    get_blob_store.cache_clear()
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    assert _get("/health/instance") == expected_health(
        settings, failed={"redis": "redis: ConnectionError", "storage": "storage: NotADirectoryError"}
    )
