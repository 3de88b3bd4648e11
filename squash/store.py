"""Where squashed tarballs live: beside the blobs, under ``squash/`` in the blob store.

A flattening writes a local part file, which concurrent downloads on the same machine follow
while it grows; when it is complete it is published under its final name in one step (a rename
on a filesystem, an upload on S3), so nothing half-written is ever served from the cache. The
published file is served like a blob: sendfile, X-Accel-Redirect, or a presigned S3 redirect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from registry.storage import FilesystemBlobStore, S3BlobStore, get_blob_store

PREFIX = "squash/"


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int
    modified: float  # seconds since the epoch


class SquashStore:
    """The squash part of the blob store (same backend, same bucket or directory)."""

    def __init__(self, blobs):
        self.blobs = blobs
        self.s3 = isinstance(blobs, S3BlobStore)

    # -- part files (local, being written) ---------------------------------------------------

    def part_dir(self) -> Path:
        if self.s3:
            # S3 objects cannot be followed while they grow: the part is spooled locally.
            directory = Path(settings.DATA_DIR) / "squash-spool"
        else:
            # The same filesystem as the final name, so publishing is a rename.
            directory = Path(settings.STORAGE_DIR) / "squash" / "parts"
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def part_path(self, name: str) -> str:
        return str(self.part_dir() / (name.removeprefix(PREFIX).replace("/", "-") + ".part"))

    def publish(self, part_path: str, name: str) -> None:
        if self.s3:
            self.blobs._bucket.Object(name).upload_file(part_path)
            os.unlink(part_path)
            return
        final = self._path(name)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.rename(part_path, final)

    # -- published files ---------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return str(Path(settings.STORAGE_DIR) / name) if isinstance(self.blobs, FilesystemBlobStore) else ""

    def local_path(self, name: str) -> str | None:
        return None if self.s3 else self._path(name)

    def redirect_url(self, name: str) -> str | None:
        return self.blobs.storage.url(name) if self.s3 else None

    def exists(self, name: str) -> bool:
        if self.s3:
            return self.blobs.storage.exists(name)
        return os.path.exists(self._path(name))

    def open(self, name: str) -> BinaryIO:
        if self.s3:
            return self.blobs._bucket.Object(name).get()["Body"]
        return open(self._path(name), "rb")

    def delete(self, name: str) -> None:
        if not name:
            return
        if self.s3:
            self.blobs.storage.delete(name)
            return
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    def published(self) -> Iterator[StoredFile]:
        """Every published tarball (for garbage collection of those no row names)."""
        if self.s3:
            for item in self.blobs._bucket.objects.filter(Prefix=PREFIX):
                yield StoredFile(item.key, item.size, item.last_modified.timestamp())
            return
        root = Path(settings.STORAGE_DIR) / PREFIX
        if not root.is_dir():
            return
        for directory, subdirectories, files in os.walk(root):
            if os.path.abspath(directory) == os.path.abspath(self.part_dir()):
                subdirectories[:] = []
                continue
            for file in files:
                path = os.path.join(directory, file)
                try:
                    stat = os.stat(path)
                except FileNotFoundError:
                    continue
                yield StoredFile(os.path.relpath(path, settings.STORAGE_DIR), stat.st_size, stat.st_mtime)

    def parts(self) -> Iterator[StoredFile]:
        """Part files on this machine (a dead flattening leaves one)."""
        with os.scandir(self.part_dir()) as entries:
            for entry in entries:
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                yield StoredFile(entry.path, stat.st_size, stat.st_mtime)


def get_squash_store() -> SquashStore:
    return SquashStore(get_blob_store())
