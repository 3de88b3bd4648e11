"""Where blob bytes live: one small interface, two backends built from settings.

Blobs are addressed by digest under ``blobs/<algo>/<2 hex>/<hex>``; uploads in progress live
under ``uploads/<uuid>`` and become a blob only after the service has verified their digest, so a
failed or interrupted upload never shows up as a blob. Bytes never pass through the database.

Reads go through django-storages / Django storage objects. Uploads need operations those APIs
lack (append at an offset, atomic publish), so each backend adds them in the way its medium
does best: one file appended under a lock on a filesystem, one object per chunk on S3.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import BinaryIO

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.storage import FileSystemStorage

from registry import errors

COPY_BUFFER = 1024 * 1024


def blob_name(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart[:2]}/{hexpart}"


def copy_stream(src: BinaryIO, dst: BinaryIO, length: int | None) -> int:
    """Copy ``length`` bytes (or until EOF when None) and return how many were copied."""
    copied = 0
    while length is None or copied < length:
        want = COPY_BUFFER if length is None else min(COPY_BUFFER, length - copied)
        chunk = src.read(want)
        if not chunk:
            break
        # An unbuffered file may take part of a write (a disk filling up): write the rest, which
        # raises ENOSPC, instead of counting bytes that were never stored.
        view = memoryview(chunk)
        while view:
            view = view[dst.write(view) :]
        copied += len(chunk)
    return copied


class BlobStore:
    """The storage interface the registry services use."""

    # Reads
    def exists(self, digest: str) -> bool:
        raise NotImplementedError

    def open_blob(self, digest: str) -> BinaryIO:
        raise NotImplementedError

    def local_path(self, digest: str) -> str | None:
        """A filesystem path the web server may ``sendfile`` from, when there is one."""
        return None

    def redirect_url(self, digest: str) -> str | None:
        """A URL the client may fetch the bytes from directly (presigned), when there is one."""
        return None

    def delete_blob(self, digest: str) -> None:
        raise NotImplementedError

    # Uploads. ``parts`` is what upload_append returned so far (for chunk-per-object media).
    @contextmanager
    def upload_lock(self, upload_id: str):
        """Serialize requests on one upload session where the medium needs it."""
        yield

    def discard_part(self, part) -> None:
        """Remove a part written by a request that lost the race to commit it."""

    def upload_append(self, upload_id: str, offset: int, stream: BinaryIO, length: int | None) -> tuple[int, object]:
        """Write the stream at ``offset`` (the committed size); return the new size and a part
        reference to record. Bytes past ``offset`` left by an interrupted request are discarded.
        """
        raise NotImplementedError

    def upload_read(self, upload_id: str, size: int, parts: list) -> Iterator[bytes]:
        """The first ``size`` bytes of an upload, in chunks (for re-hashing)."""
        raise NotImplementedError

    def upload_publish(self, upload_id: str, size: int, digest: str, parts: list) -> None:
        """Make the (already verified) first ``size`` bytes of an upload the blob ``digest``."""
        raise NotImplementedError

    def upload_delete(self, upload_id: str, parts: list) -> None:
        raise NotImplementedError

    def upload_ids_written_before(self, cutoff: datetime) -> list[str]:
        """Uploads in storage whose last byte was written before ``cutoff`` (for garbage
        collection, which keeps those that still have a session)."""
        raise NotImplementedError


class FilesystemBlobStore(BlobStore):
    """Blobs as files: GETs can use ``sendfile``; publishing is an atomic ``rename``."""

    def __init__(self, root: str):
        self.storage = FileSystemStorage(location=root)
        self.root = root
        os.makedirs(os.path.join(root, "uploads"), exist_ok=True)

    def _path(self, digest: str) -> str:
        return self.storage.path(blob_name(digest))

    def _upload_path(self, upload_id: str) -> str:
        return os.path.join(self.root, "uploads", upload_id)

    def exists(self, digest: str) -> bool:
        return os.path.exists(self._path(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self._path(digest), "rb")
        except FileNotFoundError:
            raise errors.BlobUnknown({"digest": digest}) from None

    def local_path(self, digest: str) -> str | None:
        return self._path(digest)

    def delete_blob(self, digest: str) -> None:
        try:
            os.unlink(self._path(digest))
        except FileNotFoundError:
            pass

    @contextmanager
    def upload_lock(self, upload_id: str):
        # An flock on a side file serializes two requests racing on one session, across
        # processes; the caller re-reads the committed offset inside it.
        fd = os.open(self._upload_path(upload_id) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def upload_append(self, upload_id: str, offset: int, stream: BinaryIO, length: int | None) -> tuple[int, object]:
        fd = os.open(self._upload_path(upload_id), os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if size < offset:
                # Committed bytes are missing: the session cannot be continued.
                raise errors.BlobUploadInvalid({"reason": "upload data lost"})
            if size > offset:
                f.truncate(offset)
            f.seek(offset)
            try:
                copied = copy_stream(stream, f, length)
            except OSError:
                # A full disk (or a failing client read): give back the space at once, so the
                # failed request leaves the disk as it found it and other pushes can go on.
                f.truncate(offset)
                raise
        # No fsync: a killed process keeps what the kernel has, and the digest check at
        # publish time catches anything torn.
        return offset + copied, None

    def upload_read(self, upload_id: str, size: int, parts: list) -> Iterator[bytes]:
        try:
            f = open(self._upload_path(upload_id), "rb")
        except FileNotFoundError:
            # Published by a process killed before it committed the row (or removed by GC).
            raise errors.BlobUploadInvalid({"reason": "upload data lost"}) from None
        with f:
            remaining = size
            while remaining > 0:
                chunk = f.read(min(COPY_BUFFER, remaining))
                if not chunk:
                    raise errors.BlobUploadInvalid({"reason": "upload data lost"})
                remaining -= len(chunk)
                yield chunk

    def upload_publish(self, upload_id: str, size: int, digest: str, parts: list) -> None:
        src = self._upload_path(upload_id)
        dst = self._path(digest)
        if os.path.getsize(src) != size:
            os.truncate(src, size)
        if os.path.exists(dst):
            # Same digest, same bytes: keep the existing file (it may be being served).
            os.unlink(src)
            return
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(src, dst)
        self.upload_delete(upload_id, parts)

    def upload_delete(self, upload_id: str, parts: list) -> None:
        for path in (self._upload_path(upload_id), self._upload_path(upload_id) + ".lock"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def upload_ids_written_before(self, cutoff: datetime) -> list[str]:
        # An upload is its data file and its lock file; the newer of the two dates it.
        newest: dict[str, float] = {}
        with os.scandir(os.path.join(self.root, "uploads")) as entries:
            for entry in entries:
                try:
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    continue  # finished or removed while we listed
                upload_id = entry.name.removesuffix(".lock")
                newest[upload_id] = max(mtime, newest.get(upload_id, 0.0))
        limit = cutoff.timestamp()
        return sorted(upload_id for upload_id, mtime in newest.items() if mtime < limit)


class _ChainReader:
    """A read()-able stream over several S3 objects in order, limited to ``size`` bytes."""

    def __init__(self, bodies: Iterator, size: int):
        self._bodies = bodies
        self._current = None
        self._remaining = size

    def read(self, n: int = -1) -> bytes:
        # Fill the request across object boundaries: boto3's managed upload takes a short read
        # for the end of the stream (a 3-part upload was published as its first two parts).
        if self._remaining <= 0:
            return b""
        n = self._remaining if n is None or n < 0 else min(n, self._remaining)
        out = bytearray()
        while len(out) < n:
            if self._current is None:
                self._current = next(self._bodies, None)
                if self._current is None:
                    break
            data = self._current.read(n - len(out))
            if not data:
                self._current = None
                continue
            out += data
        self._remaining -= len(out)
        return bytes(out)


def _no_such_key(exc: ClientError) -> bool:
    # Matched by code, not by the modeled NoSuchKey class: django-storages makes one boto3
    # session per thread, each with its own exception classes.
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404")


class S3BlobStore(BlobStore):
    """Blobs as S3 objects (django-storages' S3 backend); GETs redirect to presigned URLs.

    Each PATCH becomes one object ``uploads/<uuid>/<offset>``, so any web process on any
    machine can continue an upload; publishing concatenates them into the blob object with a
    managed (multipart) transfer, after the digest has been verified.
    """

    def __init__(self):
        from storages.backends.s3 import S3Storage

        self.storage = S3Storage(
            bucket_name=settings.S3_BUCKET,
            endpoint_url=settings.S3_ENDPOINT_URL,
            region_name=settings.S3_REGION,
            access_key=settings.S3_ACCESS_KEY_ID,
            secret_key=settings.S3_SECRET_ACCESS_KEY,
            file_overwrite=True,
            querystring_auth=True,
            querystring_expire=settings.S3_PRESIGN_SECONDS,
            default_acl=None,
        )

    @property
    def _bucket(self):
        return self.storage.bucket

    def exists(self, digest: str) -> bool:
        return self.storage.exists(blob_name(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return self._bucket.Object(blob_name(digest)).get()["Body"]
        except ClientError as exc:
            if not _no_such_key(exc):
                raise
            raise errors.BlobUnknown({"digest": digest}) from None

    def redirect_url(self, digest: str) -> str | None:
        return self.storage.url(blob_name(digest))

    def delete_blob(self, digest: str) -> None:
        self.storage.delete(blob_name(digest))

    def upload_append(self, upload_id: str, offset: int, stream: BinaryIO, length: int | None) -> tuple[int, object]:
        # A random suffix: a request that loses the race on the session row must not overwrite
        # the winner's object; it deletes its own instead (see registry.services).
        key = f"uploads/{upload_id}/{offset:020d}-{uuid.uuid4().hex}"
        counter = _CountingReader(stream, length)
        self._bucket.Object(key).upload_fileobj(counter)
        return offset + counter.count, [offset, counter.count, key]

    def discard_part(self, part) -> None:
        self._bucket.Object(part[2]).delete()

    def _chain_reader(self, size: int, parts: list) -> _ChainReader:
        chain, offset = [], 0
        for part_offset, part_size, key in parts:
            if part_offset != offset:
                raise errors.BlobUploadInvalid({"reason": "upload data lost"})
            chain.append(key)
            offset += part_size
        if offset < size:
            raise errors.BlobUploadInvalid({"reason": "upload data lost"})
        return _ChainReader(self._part_bodies(chain), size)

    def _part_bodies(self, keys: list[str]) -> Iterator:
        for key in keys:
            try:
                yield self._bucket.Object(key).get()["Body"]
            except ClientError as exc:
                if not _no_such_key(exc):
                    raise
                # A part expired or was removed behind our back: the session cannot be finished.
                raise errors.BlobUploadInvalid({"reason": "upload data lost"}) from None

    def upload_read(self, upload_id: str, size: int, parts: list) -> Iterator[bytes]:
        reader = self._chain_reader(size, parts)
        while chunk := reader.read(COPY_BUFFER):
            yield chunk

    def upload_publish(self, upload_id: str, size: int, digest: str, parts: list) -> None:
        self._bucket.Object(blob_name(digest)).upload_fileobj(self._chain_reader(size, parts))
        self.upload_delete(upload_id, parts)

    def upload_delete(self, upload_id: str, parts: list) -> None:
        self._bucket.objects.filter(Prefix=f"uploads/{upload_id}/").delete()

    def upload_ids_written_before(self, cutoff: datetime) -> list[str]:
        # Each chunk is an object ``uploads/<id>/<offset>-<random>``; the newest one dates it.
        newest: dict[str, datetime] = {}
        for item in self._bucket.objects.filter(Prefix="uploads/"):
            upload_id = item.key.split("/", 2)[1]
            if upload_id not in newest or item.last_modified > newest[upload_id]:
                newest[upload_id] = item.last_modified
        return sorted(upload_id for upload_id, modified in newest.items() if modified < cutoff)


class _CountingReader:
    """Reads at most ``limit`` bytes from a stream and counts them."""

    def __init__(self, stream: BinaryIO, limit: int | None):
        self._stream = stream
        self._limit = limit
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if self._limit is not None:
            left = self._limit - self.count
            if left <= 0:
                return b""
            n = left if n is None or n < 0 else min(n, left)
        # Fill the request (read() means to EOF): boto3 takes a short read for the end of the
        # stream, and request bodies arrive from sockets in short reads.
        out = bytearray()
        while n is None or n < 0 or len(out) < n:
            want = COPY_BUFFER if n is None or n < 0 else n - len(out)
            data = self._stream.read(want)
            if not data:
                break
            out += data
        self.count += len(out)
        return bytes(out)


@lru_cache(maxsize=1)
def get_blob_store() -> BlobStore:
    """The process's store, built from settings (tests clear the cache to switch)."""
    if settings.STORAGE_BACKEND == "s3":
        return S3BlobStore()
    if settings.STORAGE_BACKEND == "filesystem":
        return FilesystemBlobStore(str(settings.STORAGE_DIR))
    raise ValueError(f"Unknown STORAGE_BACKEND {settings.STORAGE_BACKEND!r}")
