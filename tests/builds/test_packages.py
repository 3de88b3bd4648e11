"""Build package storage on a real filesystem and on a real S3 API (moto's server): recognition,
the cap, nothing half-stored, streaming reads, log archives, pruning."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from builds import packages, selectors, services
from builds.errors import PackageError, PackageTooLarge
from builds.models import Build, BuildLogEntry, BuildPackage, Phase
from tests.builds.api_support import (
    DOCKERFILE,
    Reply,
    as_principal,
    builds_on,
    file_server,
    gzip_of,
    package_dir,
    plain_tar,
    queued_build,
    tar_gz,
    uploaded_package,
    world,
    zip_bytes,
)
from tests.storage.conftest import moto_endpoint, s3

FIXTURES = (builds_on, file_server, package_dir, world, moto_endpoint, s3)  # pytest finds them here, by name


class Trickle(io.RawIOBase):
    """A body that arrives a few bytes per read, like a socket."""

    def __init__(self, data: bytes, step: int = 7):
        self._data = memoryview(data)
        self._step = step

    def readable(self):
        return True

    def read(self, n=-1):
        n = self._step if n is None or n < 0 else min(n, self._step)
        chunk, self._data = bytes(self._data[:n]), self._data[n:]
        return chunk


# ---------------------------------------------------------------------------------------------
# Recognition


@pytest.mark.parametrize(
    "data, mime_type",
    [
        (DOCKERFILE, packages.MIME_DOCKERFILE),
        ("FROM alpine\nRUN echo héllo ✓\n".encode(), packages.MIME_DOCKERFILE),
        (tar_gz({"Dockerfile": DOCKERFILE}), packages.MIME_GZIP),
        (gzip_of(b"anything"), packages.MIME_GZIP),
        (plain_tar({"Dockerfile": DOCKERFILE}), packages.MIME_TAR),
        (zip_bytes({"Dockerfile": DOCKERFILE}), packages.MIME_ZIP),
        (zip_bytes({}), packages.MIME_ZIP),
    ],
    ids=["dockerfile", "utf8-dockerfile", "tar-gz", "gzip", "tar", "zip", "empty-zip"],
)
def test_it_recognises_dockerfiles_and_archives(data, mime_type):
    assert packages.detect_mime_type(data[: packages.SNIFF_BYTES]) == mime_type


def test_a_multibyte_character_cut_by_the_sniff_window_is_still_text():
    text = b"FROM x\n" + "é".encode() * 400
    head = text[: packages.SNIFF_BYTES]
    assert head[-1:] == b"\xc3"  # the window ends inside a character
    assert packages.detect_mime_type(head) == packages.MIME_DOCKERFILE


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01binary", b"\xff\xfe\xfa not utf-8", b"BZh91AY&SY\x00\x00"],
    ids=["empty", "nul", "not-utf8", "bzip2"],
)
def test_it_refuses_what_is_no_build_source(data):
    with pytest.raises(PackageError):
        packages.detect_mime_type(data)


# ---------------------------------------------------------------------------------------------
# Spooling on the filesystem


def test_a_trickled_upload_is_stored_whole_and_hashed(world, builds_on, package_dir):
    data = tar_gz({f"f{n}": os.urandom(3000) for n in range(20)})
    package = services.package_create(owner=world.alice, mime_type="application/gzip")
    services.package_upload(package=package, stream=Trickle(data, 1000), length=len(data))
    package.refresh_from_db()
    assert package.size == len(data)
    assert (package_dir / str(package.uuid)).read_bytes() == data
    with packages.package_open(package) as stream:
        assert stream.read() == data
    assert packages.package_local_path(package) == str(package_dir / str(package.uuid))
    assert os.listdir(package_dir / "tmp") == []


def test_the_cap_refuses_a_declared_length_before_reading(settings, package_dir):
    settings.BUILD_PACKAGE_MAX_BYTES = 10

    class Untouchable(io.RawIOBase):
        def read(self, n=-1):
            raise AssertionError("the body must not be read")

    with pytest.raises(PackageTooLarge):
        packages.spool_stream(Untouchable(), length=11)


def test_the_cap_stops_a_body_without_a_length(settings, package_dir):
    settings.BUILD_PACKAGE_MAX_BYTES = 1000
    with pytest.raises(PackageTooLarge):
        packages.spool_stream(Trickle(DOCKERFILE * 100, 64), length=None)
    assert os.listdir(package_dir / "tmp") == []
    spooled = packages.spool_stream(io.BytesIO(DOCKERFILE), length=None)
    try:
        assert spooled.size == len(DOCKERFILE)
    finally:
        spooled.discard()
    assert os.listdir(package_dir / "tmp") == []


def test_a_url_is_downloaded_in_chunks_through_the_guard(file_server, package_dir, settings):
    data = tar_gz({"big": os.urandom(300_000)})
    file_server.default = Reply(status=200, body=data)
    spooled = packages.spool_url(file_server.url("/ctx.tar.gz"))
    try:
        with open(spooled.path, "rb") as f:
            assert f.read() == data
        assert spooled.mime_type == packages.MIME_GZIP
        assert spooled.size == len(data)
    finally:
        spooled.discard()
    settings.BUILD_PACKAGE_MAX_BYTES = len(data) - 1
    with pytest.raises(PackageTooLarge):
        packages.spool_url(file_server.url("/ctx.tar.gz"))
    assert os.listdir(package_dir / "tmp") == []


def test_a_url_that_times_out_is_a_clear_error(file_server, settings, package_dir):
    settings.OUTBOUND_TIMEOUT_SECONDS = 0.5
    file_server.default = Reply(status=200, body=DOCKERFILE, delay=2)
    started = time.monotonic()
    with pytest.raises(PackageError, match="could not be fetched"):
        packages.spool_url(file_server.url("/slow"))
    assert time.monotonic() - started < 2
    assert os.listdir(package_dir / "tmp") == []


# ---------------------------------------------------------------------------------------------
# Logs


def _finished_with_log(world, count: int) -> Build:
    build = queued_build(world)
    for seq in range(count):
        BuildLogEntry.objects.create(build=build, seq=seq, type="" if seq % 2 else "command", message=f"line {seq}")
    Build.objects.filter(pk=build.pk).update(phase=Phase.COMPLETE, log_count=count, completed=timezone.now())
    build.refresh_from_db()
    return build


def test_archiving_moves_the_log_out_of_the_database_once(world, builds_on, package_dir):
    build = _finished_with_log(world, 250)
    before, total = selectors.build_logs(build=build, start=240)
    assert total == 250 and len(before) == 10
    packages.archive_logs(build)
    packages.archive_logs(build)  # a second call changes nothing
    build.refresh_from_db()
    assert build.logs_archived and build.log_count == 250
    assert not BuildLogEntry.objects.filter(build=build).exists()
    assert selectors.build_logs(build=build, start=240) == (before, 250)
    assert packages.read_archived_logs(build)[0] == {"message": "line 0", "type": "command"}


def test_a_reader_holding_the_build_from_before_the_archive_still_gets_the_whole_log(
    world, builds_on, package_dir
):
    """The API reads the build, then its log rows; when the build ends in between, the rows are
    already gone to storage: the reader gets the archive, not an empty log."""
    build = _finished_with_log(world, 30)
    stale = Build.objects.get(pk=build.pk)  # read before the archive: logs_archived is False
    packages.archive_logs(Build.objects.get(pk=build.pk))
    entries, total = selectors.build_logs(build=stale, start=25)
    assert total == 30 and [e["message"] for e in entries] == [f"line {n}" for n in range(25, 30)]


# ---------------------------------------------------------------------------------------------
# Pruning


def _age(path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def test_prune_removes_only_what_nothing_needs(world, builds_on, package_dir):
    old = timezone.now() - timedelta(days=2)
    unused_old = uploaded_package(world.alice, DOCKERFILE)
    BuildPackage.objects.filter(pk=unused_old.pk).update(created=old)
    unused_new = uploaded_package(world.alice, DOCKERFILE)
    waiting = queued_build(world)
    BuildPackage.objects.filter(pk=waiting.package_id).update(created=old)
    done = queued_build(world)
    Build.objects.filter(pk=done.pk).update(phase=Phase.COMPLETE, completed=old)
    done_recently = queued_build(world)
    Build.objects.filter(pk=done_recently.pk).update(phase=Phase.ERROR, completed=timezone.now())
    stray = package_dir / "0b7c9c55-2b0a-4d8e-9a57-1f3bfae6c1d2"
    stray.write_bytes(b"left by a crash")
    _age(stray, 2)
    spool = package_dir / "tmp" / "spool-interrupted"
    spool.write_bytes(b"half")
    _age(spool, 2)
    fresh_spool = package_dir / "tmp" / "spool-running"
    fresh_spool.write_bytes(b"in progress")

    removed = packages.packages_prune()

    assert removed == 4
    left = set(BuildPackage.objects.values_list("pk", flat=True))
    assert left == {unused_new.pk, waiting.package_id, done_recently.package_id}
    assert not (package_dir / str(unused_old.uuid)).exists()
    assert (package_dir / str(waiting.package.uuid)).exists()
    assert not stray.exists() and not spool.exists() and fresh_spool.exists()
    assert Build.objects.get(pk=done.pk).package is None


# ---------------------------------------------------------------------------------------------
# S3


def test_packages_and_logs_live_in_s3_when_storage_is_s3(world, builds_on, s3, package_dir):
    data = zip_bytes({"Dockerfile": DOCKERFILE})
    package = uploaded_package(world.alice, data)
    key = f"build-packages/{package.uuid}"
    assert s3.keys("build-packages/") == [key]
    assert s3.get(key) == data
    assert packages.package_local_path(package) is None
    stream = packages.package_open(package)
    try:
        assert stream.read() == data
    finally:
        stream.close()
    assert os.listdir(package_dir / "tmp") == []

    build = services.build_create(repository=world.app, principal=as_principal(world.alice), package=package)
    BuildLogEntry.objects.create(build=build, seq=0, type="phase", message="building")
    Build.objects.filter(pk=build.pk).update(phase=Phase.COMPLETE, completed=timezone.now())
    build.refresh_from_db()
    packages.archive_logs(build)
    assert s3.keys("build-logs/") == [f"build-logs/{build.uuid}.jsonl.gz"]
    assert selectors.build_logs(build=build) == ([{"message": "building", "type": "phase"}], 1)

    packages.package_release(build)
    assert s3.keys("build-packages/") == []
    assert not BuildPackage.objects.filter(pk=package.pk).exists()


def test_an_over_size_upload_leaves_nothing_in_s3(world, builds_on, s3, settings):
    settings.BUILD_PACKAGE_MAX_BYTES = 100
    package = services.package_create(owner=world.alice, mime_type="text/plain")
    with pytest.raises(PackageTooLarge):
        services.package_upload(package=package, stream=io.BytesIO(DOCKERFILE * 10), length=None)
    assert s3.keys() == []
    package.refresh_from_db()
    assert package.uploaded is None


def test_prune_on_s3_removes_rowless_objects(world, builds_on, s3):
    s3.client.put_object(Bucket=s3.name, Key="build-packages/stray", Body=b"x")
    s3.client.put_object(Bucket=s3.name, Key="build-logs/gone.jsonl.gz", Body=b"x")
    kept = uploaded_package(world.alice, DOCKERFILE)
    assert packages.packages_prune(older_than=timedelta(seconds=-60)) >= 2
    # The kept package had no build and is "old" for a negative horizon: it goes too.
    assert s3.keys() == []
    assert not BuildPackage.objects.filter(pk=kept.pk).exists()
