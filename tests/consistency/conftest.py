"""Helpers for the consistency tests: a registry with real content (pushed over /v2/), files
aged past the grace period, and a lock held by another thread (another process's push)."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from registry.locks import digest_lock
from registry.storage import blob_name
from tests.gc.conftest import as_alice, image_of, layer, pusher, repo
from tests.registry.conftest import sha256
from tests.storage.conftest import moto_endpoint, s3

GRACE = 3600


@pytest.fixture(autouse=True)
def _own_dirs(settings, tmp_path):
    """Storage and build packages of this test only; the default one-hour grace period."""
    settings.BUILD_PACKAGE_DIR = tmp_path / "build-packages"
    settings.GC_GRACE_SECONDS = GRACE


def blob_path(digest: str) -> Path:
    return Path(settings.STORAGE_DIR) / blob_name(digest)


def age(path: Path, seconds: float = 2 * GRACE) -> None:
    """Make a file look written ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def plant(relative: str, data: bytes, *, root: Path | None = None, old: bool = True) -> Path:
    path = (root or Path(settings.STORAGE_DIR)) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        age(path)
    return path


def run_command(name: str, *args: str) -> tuple[int, str]:
    """``manage.py <name> <args>``: its exit status and output."""
    out = StringIO()
    try:
        call_command(name, *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


@contextmanager
def held_elsewhere(lock_factory):
    """Hold ``lock_factory()`` from another thread (its own database session, as another process
    would) for the duration of the block."""
    acquired, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold():
        try:
            with lock_factory():
                acquired.set()
                release.wait(30)
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            acquired.set()
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert acquired.wait(30)
    assert not failure, failure
    try:
        yield
    finally:
        release.set()
        thread.join(30)


def digest_held_elsewhere(digest: str):
    return held_elsewhere(lambda: digest_lock(digest))


def digest_of(data: bytes) -> str:
    return sha256(data)


__all__ = ["as_alice", "image_of", "layer", "pusher", "repo", "moto_endpoint", "s3"]
