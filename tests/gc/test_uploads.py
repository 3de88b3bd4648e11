"""Upload sessions and upload files: expired sessions go with their bytes, files that no session
owns go once they are old, and nothing an upload in progress needs is touched."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings

from registry import services
from registry.models import UploadSession
from registry.storage import get_blob_store
from tests.gc.conftest import HOUR, MINUTE, run_gc
from tests.registry.conftest import assert_error, sha256, stored_files, user_principal

DAY_AND_AN_HOUR = 25 * HOUR  # past UPLOAD_SESSION_SECONDS (one day)


def _start_upload(client, name: str, data: bytes) -> str:
    headers = client.push(name)
    response = client.client.post(f"/v2/{name}/blobs/uploads/", **headers)
    assert response.status_code == 202, response.content
    location = response["Location"]
    response = client.client.patch(location, data=data, content_type="application/octet-stream", **headers)
    assert response.status_code == 202, response.content
    return location


def _uploads() -> list[str]:
    return stored_files()["uploads"]


def test_an_expired_session_goes_with_its_bytes(as_alice, repo):
    location = _start_upload(as_alice, "alice/app", b"half of a layer")
    session_id = location.rsplit("/", 1)[1]
    assert _uploads() == [session_id, f"{session_id}.lock"]

    assert run_gc(2 * HOUR).uploads_cleaned == 0
    assert UploadSession.objects.filter(pk=session_id).exists()
    assert _uploads() == [session_id, f"{session_id}.lock"]

    run = run_gc(DAY_AND_AN_HOUR)

    assert run.uploads_cleaned == 1
    assert not UploadSession.objects.exists()
    assert _uploads() == []
    response = as_alice.client.put(
        f"{location}?digest={sha256(b'half of a layer')}", **as_alice.push("alice/app")
    )
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_a_session_in_progress_keeps_its_bytes_however_old_they_are(as_alice, repo):
    location = _start_upload(as_alice, "alice/app", b"still uploading")
    session_id = location.rsplit("/", 1)[1]

    run = run_gc(20 * HOUR)

    assert run.uploads_cleaned == 0
    assert _uploads() == [session_id, f"{session_id}.lock"]
    data = b"still uploading"
    response = as_alice.client.put(f"{location}?digest={sha256(data)}", **as_alice.push("alice/app"))
    assert response.status_code == 201, response.content


def test_upload_files_without_a_session_go_once_they_are_old(settings, repo):
    settings.GC_GRACE_SECONDS = 0
    uploads = Path(get_blob_store().root) / "uploads"
    killed_monolithic = f"mono-{uuid.uuid4()}"
    killed_session = str(uuid.uuid4())  # its row is gone, its files are not
    (uploads / killed_monolithic).write_bytes(b"a body that never finished")
    (uploads / killed_session).write_bytes(b"chunks")
    (uploads / f"{killed_session}.lock").write_bytes(b"")

    # Even with no grace period a file without a session waits an hour: a monolithic upload
    # still streaming its body has nothing else to protect it.
    assert run_gc(30 * MINUTE).uploads_cleaned == 0
    assert len(_uploads()) == 3

    run = run_gc(2 * HOUR)

    assert run.uploads_cleaned == 2
    assert _uploads() == []


def test_a_repository_pass_cleans_only_that_repositorys_sessions(as_alice, alice, repo):
    other = services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    mine = _start_upload(as_alice, "alice/app", b"mine").rsplit("/", 1)[1]
    theirs = _start_upload(as_alice, "alice/other", b"theirs").rsplit("/", 1)[1]
    stray = f"mono-{uuid.uuid4()}"
    (Path(settings.STORAGE_DIR) / "uploads" / stray).write_bytes(b"stray")

    run = run_gc(DAY_AND_AN_HOUR, repository=other)

    assert run.uploads_cleaned == 1
    assert list(UploadSession.objects.values_list("repository__name", flat=True)) == ["app"]
    assert _uploads() == sorted([mine, f"{mine}.lock", stray])
    assert theirs not in " ".join(_uploads())
