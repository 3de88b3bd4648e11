"""A lock per blob digest, shared by every process that publishes or deletes stored bytes.

Publishing a blob (the "are the bytes stored already?" check, the rename or copy into
``blobs/...`` and the commit of its Blob row) and garbage collection's deletion of the bytes must
never interleave: a publisher that finds the bytes present keeps them instead of its own copy,
and would record a Blob row for bytes that garbage collection removes a moment later.

On PostgreSQL the lock is a session advisory lock, so processes on any machine sharing the
database (and the S3 bucket) exclude each other. SQLite serves one machine, where an ``flock``
on one of a fixed set of lock files under STORAGE_DIR (``locks/``, beside ``blobs/`` and
``uploads/``) does the same without growing a file per digest (two digests sharing a file only
wait for each other briefly).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection

# The first key of PostgreSQL's two-key advisory locks: this registry's blob digests ("bd").
_PG_LOCK_CLASS = 0x6264
_FILE_STRIPES_HEX = 3  # 4096 lock files at most


def _digest_hash(digest: str) -> bytes:
    return hashlib.sha256(digest.encode()).digest()


@contextmanager
def digest_lock(digest: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock of ``digest`` for the block; yields whether it was acquired.

    With ``wait=False`` the block runs at once and gets False when another process holds the
    lock (garbage collection skips that digest rather than wait behind an upload).
    """
    if connection.vendor == "postgresql":
        with _advisory_lock(digest, wait) as acquired:
            yield acquired
    else:
        with _file_lock(digest, wait) as acquired:
            yield acquired


@contextmanager
def _advisory_lock(digest: str, wait: bool) -> Iterator[bool]:
    key = int.from_bytes(_digest_hash(digest)[:4], "big", signed=True)
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_PG_LOCK_CLASS, key])
            acquired = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_PG_LOCK_CLASS, key])
            acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_PG_LOCK_CLASS, key])
            except DatabaseError:
                # A session lock must not outlive this block on a pooled connection: closing the
                # connection is the one sure way to release it when the unlock itself failed.
                connection.close()
                raise


@contextmanager
def lock_file(name: str, flags: int) -> Iterator[bool]:
    """``flock(flags)`` on ``STORAGE_DIR/locks/<name>``; yields whether it was acquired (False
    only when LOCK_NB is among ``flags`` and another process holds a conflicting lock)."""
    directory = Path(settings.STORAGE_DIR) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, flags)
            acquired = True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            acquired = False
        yield acquired
    finally:
        os.close(fd)  # releases the flock


def _file_lock(digest: str, wait: bool):
    stripe = _digest_hash(digest).hex()[:_FILE_STRIPES_HEX]
    return lock_file(f"blob-{stripe}.lock", fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
