"""Where build sources and archived build logs live, outside the database.

A build package (an uploaded Dockerfile or archive, or what a URL answered) is first *spooled*:
copied to a private temporary file while it is counted against ``BUILD_PACKAGE_MAX_BYTES``,
hashed and sniffed. Only a complete, recognised package is *published* under its final name, so a
cut-off upload, an over-size body or an unknown format never leaves bytes where a worker would
find them. Two media, chosen like the blob store (``registry.storage``):

- filesystem: ``BUILD_PACKAGE_DIR/<uuid>``; the spool file lives in ``BUILD_PACKAGE_DIR/tmp`` on the
  same file system, so publishing is one atomic ``rename``;
- S3 (``STORAGE_BACKEND=s3``): the object ``build-packages/<uuid>`` in the registry's bucket,
  written in one managed upload from the local spool file (an object appears whole or not at all).

Logs of finished builds are archived the same way (``logs/<uuid>.jsonl.gz`` on a filesystem,
``build-logs/<uuid>.jsonl.gz`` on S3): gzip-compressed JSON lines, one ``{message, type, data}``
entry each, after which the database rows are dropped.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from builds.errors import PackageError, PackageTooLarge
from builds.models import FINAL_PHASES, Build, BuildLogEntry, BuildPackage

CHUNK = 1024 * 1024
# Enough for every signature we look at (tar's ``ustar`` sits at offset 257).
SNIFF_BYTES = 512

# What a package turned out to be; stored as BuildPackage.mime_type once recognised.
MIME_DOCKERFILE = "text/x-dockerfile"
MIME_GZIP = "application/gzip"
MIME_TAR = "application/x-tar"
MIME_ZIP = "application/zip"
ARCHIVE_TYPES = frozenset({MIME_GZIP, MIME_TAR, MIME_ZIP})

KIND_DOCKERFILE = "dockerfile"
KIND_ARCHIVE = "archive"


def detect_mime_type(head: bytes) -> str:
    """What the first bytes of a build source say it is: a gzip (a ``.tar.gz``), a tar, a zip,
    or else a Dockerfile, which must be text. Anything else is refused."""
    if not head:
        raise PackageError("The build package is empty")
    if head[:2] == b"\x1f\x8b":
        return MIME_GZIP
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return MIME_ZIP
    if head[257:262] == b"ustar":
        return MIME_TAR
    unsupported = "The build package is neither a Dockerfile nor a .tar.gz, .tar or .zip archive"
    if b"\x00" in head:
        raise PackageError(unsupported)
    try:
        # Incremental: the sniffed bytes may end inside a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        raise PackageError(unsupported) from None
    return MIME_DOCKERFILE


def package_kind(package: BuildPackage) -> str:
    """``dockerfile`` or ``archive`` (the ``package_kind`` of a job), from the recognised type."""
    return KIND_ARCHIVE if package.mime_type in ARCHIVE_TYPES else KIND_DOCKERFILE


# ---------------------------------------------------------------------------------------------
# Spooling


@dataclass
class Spooled:
    """A complete, recognised package in a private temporary file, not yet published."""

    path: str
    size: int
    sha256: str
    mime_type: str

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass  # published (renamed away) or already gone


class _SpoolWriter:
    """A write()-able sink that counts, hashes and keeps the head of what passes through."""

    def __init__(self, file: BinaryIO, cap: int):
        self.file = file
        self.cap = cap
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = b""

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.cap:
            raise PackageTooLarge(f"The build package is larger than the limit of {self.cap} bytes")
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self.digest.update(data)
        self.file.write(data)
        return len(data)


def _cap() -> int:
    return int(settings.BUILD_PACKAGE_MAX_BYTES)


def _spool_file() -> tuple[BinaryIO, str]:
    directory = _store().spool_dir()
    os.makedirs(directory, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="spool-", dir=directory)
    return os.fdopen(fd, "wb"), path


def _finish(writer: _SpoolWriter, path: str) -> Spooled:
    return Spooled(
        path=path, size=writer.size, sha256=writer.digest.hexdigest(), mime_type=detect_mime_type(writer.head)
    )


def spool_stream(stream: BinaryIO, *, length: int | None) -> Spooled:
    """Copy an upload (``length`` bytes, or to its end when None) into a spool file.

    Raises PackageTooLarge past ``BUILD_PACKAGE_MAX_BYTES`` (at once when ``length`` says so),
    PackageError when the body ends early or is not a build source; nothing is left behind then.
    """
    cap = _cap()
    if length is not None and length > cap:
        raise PackageTooLarge(f"The build package is larger than the limit of {cap} bytes")
    file, path = _spool_file()
    try:
        with file:
            writer = _SpoolWriter(file, cap)
            remaining = length
            while remaining is None or remaining > 0:
                data = stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not data:
                    break
                writer.write(data)
                if remaining is not None:
                    remaining -= len(data)
            if remaining:
                raise PackageError(f"The upload ended after {writer.size} of {length} bytes")
        return _finish(writer, path)
    except BaseException:
        os.unlink(path)
        raise


def spool_url(url: str) -> Spooled:
    """Download ``url`` through the guarded outbound client into a spool file.

    The guard refuses other schemes than http(s), private addresses (unless the operator allowed
    them) and redirects; any of those, an error status, a timeout or a body over the cap is a
    PackageError with a message that says which.
    """
    from quay_site import outbound  # the guarded client; imported here to keep start-up light

    cap = _cap()
    file, path = _spool_file()
    try:
        with file:
            writer = _SpoolWriter(file, cap)
            try:
                response = outbound.request("GET", url, max_response_bytes=cap, sink=writer)
            except outbound.DestinationRefused as exc:
                raise PackageError(f"The archive URL is not allowed: {exc}") from None
            except outbound.OutboundError as exc:
                raise PackageError(f"The archive URL could not be fetched: {exc}") from None
            if response.truncated:
                raise PackageTooLarge(f"The build package is larger than the limit of {cap} bytes")
            if 300 <= response.status < 400:
                raise PackageError(f"The archive URL redirects (HTTP {response.status}); redirects are not followed")
            if not response.ok:
                raise PackageError(f"The archive URL answered HTTP {response.status}")
        return _finish(writer, path)
    except BaseException:
        os.unlink(path)
        raise


# ---------------------------------------------------------------------------------------------
# Storage media


class _FilesystemStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def spool_dir(self) -> Path:
        return self.root / "tmp"

    def _path(self, name: str) -> Path:
        return self.root / name

    def publish(self, spooled_path: str, name: str) -> None:
        target = self._path(name)
        os.makedirs(target.parent, exist_ok=True)
        os.replace(spooled_path, target)

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise PackageError("The build package is no longer stored") from None

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    def names_before(self, prefix: str, cutoff: float) -> list[str]:
        directory = self._path(prefix)
        found = []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    found.append(f"{prefix}{entry.name}")
            except FileNotFoundError:
                continue
        return found


class _S3Store:
    def __init__(self, bucket: str, endpoint: str | None, region: str, key_id: str | None, secret: str | None):
        from storages.backends.s3 import S3Storage

        self.storage = S3Storage(
            bucket_name=bucket,
            endpoint_url=endpoint,
            region_name=region,
            access_key=key_id,
            secret_key=secret,
            file_overwrite=True,
            default_acl=None,
        )

    def spool_dir(self) -> Path:
        # The spool file stays on this machine until it is complete; only then is it uploaded.
        return Path(settings.BUILD_PACKAGE_DIR) / "tmp"

    def publish(self, spooled_path: str, name: str) -> None:
        try:
            self.storage.bucket.Object(name).upload_file(spooled_path)
        finally:
            os.unlink(spooled_path)

    def open(self, name: str) -> BinaryIO:
        try:
            return self.storage.bucket.Object(name).get()["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            raise PackageError("The build package is no longer stored") from None

    def delete(self, name: str) -> None:
        self.storage.bucket.Object(name).delete()

    def names_before(self, prefix: str, cutoff: float) -> list[str]:
        return [
            item.key
            for item in self.storage.bucket.objects.filter(Prefix=prefix)
            if item.last_modified.timestamp() < cutoff
        ]


@lru_cache(maxsize=4)
def _store_for(backend: str, root: str, s3: tuple) -> _FilesystemStore | _S3Store:
    if backend == "s3":
        return _S3Store(*s3)
    if backend == "filesystem":
        return _FilesystemStore(Path(root))
    raise ValueError(f"Unknown STORAGE_BACKEND {backend!r}")


def _store() -> _FilesystemStore | _S3Store:
    # Keyed on the settings, so a test (or an operator's reload) that changes them gets a store
    # for the new ones rather than a stale cached object.
    s3 = (
        settings.S3_BUCKET,
        settings.S3_ENDPOINT_URL,
        settings.S3_REGION,
        settings.S3_ACCESS_KEY_ID,
        settings.S3_SECRET_ACCESS_KEY,
    )
    backend = settings.STORAGE_BACKEND
    return _store_for(backend, str(settings.BUILD_PACKAGE_DIR), s3 if backend == "s3" else ())


def _is_s3() -> bool:
    return settings.STORAGE_BACKEND == "s3"


def _package_name(package_uuid) -> str:
    return f"build-packages/{package_uuid}" if _is_s3() else str(package_uuid)


def _package_prefix() -> str:
    return "build-packages/" if _is_s3() else ""


def _log_prefix() -> str:
    return "build-logs/" if _is_s3() else "logs/"


def _log_name(build: Build) -> str:
    return f"{_log_prefix()}{build.uuid}.jsonl.gz"


# ---------------------------------------------------------------------------------------------
# Packages


def package_publish(*, spooled: Spooled, package: BuildPackage) -> None:
    """Make the spooled bytes the package's stored bytes (call inside the transaction that
    marks the package uploaded, so a failed publish leaves it not uploaded)."""
    _store().publish(spooled.path, _package_name(package.uuid))


def package_open(package: BuildPackage) -> BinaryIO:
    """The stored bytes of an uploaded package, as a stream (close it when done)."""
    return _store().open(_package_name(package.uuid))


def package_local_path(package: BuildPackage) -> str | None:
    """The package's file when it is on this machine's file system (for sendfile), else None."""
    store = _store()
    if isinstance(store, _FilesystemStore):
        return str(store._path(_package_name(package.uuid)))
    return None


def package_delete(package: BuildPackage) -> None:
    """Remove a package's bytes and its row."""
    _store().delete(_package_name(package.uuid))
    package.delete()


def package_release(build: Build) -> None:
    """Drop the build's package once the build is over (the build manager calls this when a
    build ends; ``build_cancel`` after a cancel). A package serves exactly one build."""
    if build.package_id is None:
        return
    package = BuildPackage.objects.filter(pk=build.package_id).first()
    if package is not None:
        package_delete(package)
    build.package_id = None


def packages_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete what nothing needs any more, older than ``older_than``: packages never used by a
    build, packages of finished builds, spool files of interrupted uploads, stored packages and
    log archives without a row. For a periodic task; returns how many things were removed."""
    cutoff = timezone.now() - older_than
    store = _store()
    removed = 0
    unfinished = Build.objects.filter(package=OuterRef("pk")).exclude(phase__in=FINAL_PHASES)
    used = Build.objects.filter(package=OuterRef("pk"))
    stale = (
        BuildPackage.objects.annotate(unfinished=Exists(unfinished), used=Exists(used))
        .filter(unfinished=False)
        .filter(Q(used=False, created__lt=cutoff) | Q(used=True, build__completed__lt=cutoff))
        .distinct()
    )
    for package in stale:
        package_delete(package)
        removed += 1
    horizon = cutoff.timestamp()
    # Spool files are named spool-*, in their own directory on both media.
    spool_dir = store.spool_dir()
    if spool_dir.is_dir():
        for entry in os.scandir(spool_dir):
            try:
                if entry.stat().st_mtime < horizon:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
    # Bytes whose row is gone (a transaction rolled back after publishing, a crash).
    known = {str(u) for u in BuildPackage.objects.values_list("uuid", flat=True)}
    prefix = _package_prefix()
    for name in store.names_before(prefix, horizon):
        if name.removeprefix(prefix) not in known:
            store.delete(name)
            removed += 1
    builds = {str(u) for u in Build.objects.filter(logs_archived=True).values_list("uuid", flat=True)}
    for name in store.names_before(_log_prefix(), horizon):
        if name.removeprefix(_log_prefix()).removesuffix(".jsonl.gz") not in builds:
            store.delete(name)
            removed += 1
    return removed


# ---------------------------------------------------------------------------------------------
# Build logs


def log_entry_view(entry: BuildLogEntry) -> dict:
    """One log entry as the API serves it: ``message``, plus ``type`` and ``data`` when set."""
    view = {"message": entry.message}
    if entry.type:
        view["type"] = entry.type
    if entry.data:
        view["data"] = entry.data
    return view


def _encode_lines(entries: Iterable[dict]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as archive:
        for entry in entries:
            archive.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
    return buffer.getvalue()


def archive_logs(build: Build) -> None:
    """Move a finished build's log from the database to storage (the manager calls this when a
    build ends). Safe to call twice: an archived build is left as it is."""
    if build.logs_archived:
        return
    entries = [log_entry_view(entry) for entry in build.log_entries.order_by("seq")]
    data = _encode_lines(entries)
    file, path = _spool_file()
    with file:
        file.write(data)
    _store().publish(path, _log_name(build))
    with transaction.atomic():
        Build.objects.filter(pk=build.pk).update(logs_archived=True, log_count=len(entries))
        BuildLogEntry.objects.filter(build_id=build.pk).delete()
    build.logs_archived = True
    build.log_count = len(entries)


def read_archived_logs(build: Build) -> list[dict]:
    """The entries of an archived build log, in order."""
    with closing(_store().open(_log_name(build))) as stream, gzip.GzipFile(fileobj=stream, mode="rb") as archive:
        return [json.loads(line) for line in archive if line.strip()]
