"""``manage.py backup`` and ``manage.py restore``: a registry with real content (images pushed over
/v2/, a moved and restored tag, a robot with a permission) is backed up, the database and storage
are wiped, and the restore brings back everything: the same rows, the same bytes, working
credentials, and a clean storage check. On whichever database the suite runs (SQLite or
PostgreSQL), and from filesystem storage to S3."""

from __future__ import annotations

import shutil

import pytest
from django.db import connection

from accounts import services as account_services
from accounts.models import User
from registry import consistency, gc, services
from registry.models import Blob, GarbageCollectionRun, Manifest, Repository, RepositoryBlob, Tag
from registry.storage import blob_name, get_blob_store
from tests.conftest import PASSWORD
from tests.consistency.conftest import held_elsewhere, image_of, layer, run_command
from tests.gc.conftest import assert_pulls_intact
from tests.registry.conftest import V2, grant, user_principal

pytestmark = pytest.mark.django_db(transaction=True)


def _content(alice):
    """Two images, a tag moved and restored (history), a robot allowed to pull."""
    as_alice = V2("alice", PASSWORD)
    first = as_alice.push_image("alice/app", "latest", image_of("first", layer("base", 6000), layer("one", 900)))
    second = as_alice.push_image("alice/app", "latest", image_of("second", layer("base", 6000), layer("two", 700)))
    as_alice.push_image("alice/app", "stable", first)
    repository = Repository.objects.get(namespace__name="alice", name="app")
    services.tag_restore(
        repository=repository, name="latest", manifest_digest=first.digest, principal=user_principal(alice), ip=None
    )
    robot, token = account_services.robot_create(namespace=alice.namespace, short_name="deploy")
    grant(repository, robot, "read")
    return first, second, robot.username, token


def _snapshot() -> dict:
    """Everything the restore must bring back, as plain values."""
    return {
        "users": sorted(User.objects.values_list("username", "password", "is_robot", "email")),
        "repositories": sorted(Repository.objects.values_list("namespace__name", "name", "visibility")),
        "tags": sorted(
            Tag.objects.values_list("name", "manifest__digest", "lifetime_start", "lifetime_end", "reversion")
        ),
        "manifests": sorted((d, bytes(raw)) for d, raw in Manifest.objects.values_list("digest", "raw")),
        "blobs": sorted(Blob.objects.values_list("digest", "size")),
        "links": sorted(RepositoryBlob.objects.values_list("repository__name", "blob__digest")),
    }


def _stored_bytes() -> dict[str, bytes]:
    store = get_blob_store()
    found = {}
    for digest in Blob.objects.values_list("digest", flat=True):
        with store.open_blob(digest) as stream:
            found[digest] = stream.read()
    return found


def _wipe_database() -> None:
    """Drop every table: the restore starts from an empty database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP SCHEMA public CASCADE")
            cursor.execute("CREATE SCHEMA public")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in connection.introspection.table_names():
                cursor.execute(f'DROP TABLE "{table}"')
            cursor.execute("PRAGMA foreign_keys = ON")
    assert connection.introspection.table_names() == []


def _assert_restored(before: dict, images, robot: str, token: str) -> None:
    assert _snapshot() == before
    as_alice = V2("alice", PASSWORD)
    for tag, image in (("latest", images[0]), ("stable", images[0])):
        headers = as_alice.pull("alice/app")
        response = as_alice.client.get(f"/v2/alice/app/manifests/{tag}", **headers)
        assert response.status_code == 200 and response.content == image.raw
    # The robot's token (stored encrypted and hashed) still works, and so does its permission.
    robot_client = V2(robot, token)
    assert robot_client.token_response("repository:alice/app:pull").status_code == 200
    report = consistency.storage_check(verify_digests=True)
    assert report.findings == [] and report.checked["digests_verified"] == len(before["blobs"])


def test_a_round_trip_through_backup_and_restore_brings_everything_back(alice, repo, tmp_path, settings):
    first, second, robot, token = _content(alice)
    before, stored = _snapshot(), _stored_bytes()
    assert len(before["tags"]) == 4  # latest: first, second, first again (a reversion); stable

    status, out = run_command("backup", str(tmp_path / "backup"))
    assert status == 0, out
    dump = "database.sqlite3" if connection.vendor == "sqlite" else "database.pgdump"
    assert (tmp_path / "backup" / dump).stat().st_size > 0
    assert not any((tmp_path / "backup" / "storage").glob("uploads/*"))

    # A backup directory is never overwritten.
    status, out = run_command_error("backup", str(tmp_path / "backup"))
    assert "is not empty" in out

    _wipe_database()
    shutil.rmtree(settings.STORAGE_DIR)
    get_blob_store.cache_clear()

    status, out = run_command("restore", str(tmp_path / "backup"))
    assert status == 0, out
    assert "storage_check: clean" in out
    assert _stored_bytes() == stored
    _assert_restored(before, (first, second), robot, token)
    assert_pulls_intact(V2("alice", PASSWORD), "alice/app", first)
    assert_pulls_intact(V2("alice", PASSWORD), "alice/app", second)

    # A second restore over a registry that has users needs --force.
    assert "not empty" in run_command_error("restore", str(tmp_path / "backup"))[1]
    status, out = run_command("restore", "--force", str(tmp_path / "backup"))
    assert status == 0, out
    _assert_restored(before, (first, second), robot, token)


def test_a_filesystem_backup_restores_into_an_s3_bucket(alice, repo, tmp_path, s3, settings):
    # Content on filesystem storage first (the s3 fixture switched to the bucket: switch back).
    settings.STORAGE_BACKEND = "filesystem"
    get_blob_store.cache_clear()
    first, second, robot, token = _content(alice)
    before, stored = _snapshot(), _stored_bytes()
    assert run_command("backup", str(tmp_path / "backup"))[0] == 0

    _wipe_database()
    settings.STORAGE_BACKEND = "s3"
    get_blob_store.cache_clear()
    status, out = run_command("restore", str(tmp_path / "backup"))
    assert status == 0, out
    assert set(s3.keys("blobs/")) == {blob_name(digest) for digest in stored}
    assert _stored_bytes() == stored
    _assert_restored(before, (first, second), robot, token)


def test_garbage_collection_and_repairs_wait_while_a_backup_runs(alice, repo):
    with held_elsewhere(lambda: gc.collection_lock(exclusive=True)):
        run = gc.gc_run(trigger=GarbageCollectionRun.Trigger.COMMAND)
        assert run.error == gc.PAUSED
        status, out = run_command_error("storage_check", "--repair")
        assert "A backup is running" in out
        assert run_command("storage_check")[0] == 0  # a check that changes nothing may run
    assert gc.gc_run(trigger=GarbageCollectionRun.Trigger.COMMAND).error == ""


def run_command_error(name: str, *args: str) -> tuple[int, str]:
    """A command expected to fail with a CommandError: its message."""
    from django.core.management.base import CommandError

    try:
        status, out = run_command(name, *args)
    except CommandError as exc:
        return 1, str(exc)
    raise AssertionError(f"{name} succeeded: {out}")
