"""Backup and restore of the whole registry: the database, then the stored bytes it names.

Order matters. Blob bytes are immutable and are stored before the row that names them is
committed (registry.services), so a database dump taken first names only bytes that exist when
the dump is taken. Copying storage second then finds every one of them, unless something deletes
bytes in between: only garbage collection does (and repository deletion's pass), and this backup
holds gc.collection_lock exclusively from the dump until the copy ends, so passes starting
meanwhile are skipped (they record "paused") and a running pass is waited for. Bytes pushed
after the dump are copied too and restore as orphans, which ``storage_check --repair`` removes.
The other order (storage first) would miss the bytes of pushes made between the copy and the
dump: rows without bytes.

A backup directory holds:

- ``backup.json``: format, time, database vendor, storage backend, counts;
- ``database.sqlite3`` (SQLite's online backup API: a consistent copy of a live database) or
  ``database.pgdump`` (``pg_dump --format=custom``, one snapshot);
- ``storage/``: ``blobs/...`` and ``squash/...`` as in the blob store, ``build-packages/<uuid>``
  and ``build-logs/<uuid>.jsonl.gz``, whatever the backend (so a backup of filesystem storage
  restores to S3 and the other way round). Uploads in progress are not copied: their sessions
  cannot be resumed on a restored registry, and clients start them again;
- ``keys/``: the generated key files under DATA_DIR (``secret_key``, from which stored secrets'
  encryption key is derived, and the registry token key) when they exist. The backup is as
  secret as the database: password hashes and encrypted secrets.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from registry import consistency, gc
from registry.consistency import BLOB, LOG, PACKAGE, SQUASH, DirectoryMedium, Layout

FORMAT = 1
MANIFEST = "backup.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
STORAGE = "storage"
KEYS = "keys"


class BackupError(Exception):
    """A backup or restore that cannot go on, with a message for the operator."""


@dataclass
class Copied:
    files: int = 0
    bytes: int = 0
    vanished: int = 0  # listed, then gone before it was copied


# ---------------------------------------------------------------------------------------------
# Backup


def backup_create(*, directory: Path, hardlink: bool = False, say: Callable[[str], None] = lambda _: None) -> dict:
    """Write a backup of the database and storage into ``directory`` (new or empty)."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # the database holds password hashes and encrypted secrets
    vendor = connection.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise BackupError(f"Backing up a {vendor} database is not supported")
    say("Pausing garbage collection (waiting for a running pass to end)")
    with gc.collection_lock(exclusive=True):
        say(f"Dumping the {vendor} database")
        if vendor == "sqlite":
            _sqlite_dump(directory / SQLITE_FILE)
        else:
            _pg_dump(directory / PG_FILE)
        blob_rows = _count_blob_rows(directory, vendor)
        say("Copying storage")
        copied = _copy_out(consistency.storage_layout(), directory / STORAGE, hardlink=hardlink)
    keys = _copy_keys_out(directory / KEYS)
    manifest = {
        "format": FORMAT,
        "created": timezone.now().isoformat(),
        "database": vendor,
        "storage_backend": settings.STORAGE_BACKEND,
        "migrations": _migrations(),
        "blob_rows": blob_rows,
        "files": copied.files,
        "bytes": copied.bytes,
        "vanished": copied.vanished,
        "keys": keys,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _sqlite_dump(path: Path) -> None:
    connection.ensure_connection()
    target = sqlite3.connect(path)
    try:
        # One step: the copy is a single consistent snapshot, whatever writers do meanwhile.
        connection.connection.backup(target)
    finally:
        target.close()


def _count_blob_rows(directory: Path, vendor: str) -> int | None:
    if vendor != "sqlite":
        return None
    from registry.models import Blob

    dump = sqlite3.connect(directory / SQLITE_FILE)
    try:
        return dump.execute(f'SELECT COUNT(*) FROM "{Blob._meta.db_table}"').fetchone()[0]
    finally:
        dump.close()


def _migrations() -> dict[str, str]:
    latest: dict[str, str] = {}
    for app, name in MigrationRecorder(connection).migration_qs.order_by("app", "name").values_list("app", "name"):
        latest[app] = name
    return latest


def _backup_key(layout: Layout, item) -> str | None:
    """Where a stored object goes in a backup (None: not backed up)."""
    if item.area in (BLOB, SQUASH):
        return item.key
    if item.area == PACKAGE:
        return "build-packages/" + item.key.removeprefix(layout.package_prefix)
    if item.area == LOG:
        return "build-logs/" + item.key.removeprefix(layout.log_prefix)
    return None


def _copy_out(layout: Layout, root: Path, *, hardlink: bool) -> Copied:
    copied = Copied()
    for item in layout.listing():
        name = _backup_key(layout, item)
        if name is None:
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _copy_one(item.medium, item.key, target, hardlink)
        except FileNotFoundError:
            copied.vanished += 1
            continue
        except Exception as exc:
            if _missing_object(exc):
                copied.vanished += 1
                continue
            raise
        copied.files += 1
        copied.bytes += item.size
    return copied


def _copy_one(medium, key: str, target: Path, hardlink: bool) -> None:
    if isinstance(medium, DirectoryMedium):
        source = medium.root / key
        if hardlink:
            # Safe for these files: they are never changed in place (published by rename).
            try:
                os.link(source, target)
                return
            except FileNotFoundError:
                raise
            except OSError as exc:
                if exc.errno != errno.EXDEV:  # another file system: copied instead
                    raise
        shutil.copy2(source, target)
        return
    stream = medium.open(key)
    try:
        with open(target, "wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
    finally:
        stream.close()


def _missing_object(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in ("NoSuchKey", "404")


def _key_files() -> dict[str, Path]:
    return {
        "secret_key": Path(settings.DATA_DIR) / "secret_key",
        "registry_token_key.pem": Path(settings.REGISTRY_TOKEN_KEY_FILE),
    }


def _copy_keys_out(root: Path) -> list[str]:
    copied = []
    for name, path in _key_files().items():
        if path.is_file():
            root.mkdir(mode=0o700, exist_ok=True)
            shutil.copyfile(path, root / name)
            os.chmod(root / name, 0o600)
            copied.append(name)
    return copied


# ---------------------------------------------------------------------------------------------
# PostgreSQL tools


def _pg_env() -> dict[str, str]:
    """libpq's variables for the configured database: the password never reaches a command line."""
    db = connection.settings_dict
    env = dict(os.environ)
    for variable, value in (
        ("PGHOST", db.get("HOST")),
        ("PGPORT", db.get("PORT")),
        ("PGUSER", db.get("USER")),
        ("PGPASSWORD", db.get("PASSWORD")),
        ("PGDATABASE", db.get("NAME")),
        ("PGSSLMODE", (db.get("OPTIONS") or {}).get("sslmode")),
    ):
        if value:
            env[variable] = str(value)
    return env


def _pg_tool(name: str) -> str:
    """``pg_dump`` or ``pg_restore`` of at least the server's major version."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        server = int(cursor.fetchone()[0]) // 10000
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]) / name)
    # Debian keeps each major version's tools in its own directory; PATH has a version wrapper.
    candidates.append(Path(f"/usr/lib/postgresql/{server}/bin") / name)
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if not candidate.is_file():
            continue
        output = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", output)
        if match and int(match.group(1)) >= server:
            return str(candidate)
    raise BackupError(
        f"{name} of PostgreSQL {server} or newer was not found (apt-get install postgresql-client-{server}, "
        "or set PG_BIN to its directory)"
    )


def _run_pg(args: list[str]) -> None:
    result = subprocess.run(args, env=_pg_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _pg_dump(path: Path) -> None:
    _run_pg([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={path}"])


def _pg_restore(path: Path) -> None:
    tool = _pg_tool("pg_restore")
    # Our own session must not hold anything the restore drops.
    connection.close()
    _run_pg(
        [
            tool,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={connection.settings_dict['NAME']}",
            str(path),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Restore


def backup_restore(
    *,
    directory: Path,
    force: bool = False,
    hardlink: bool = False,
    migrate: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> consistency.Report:
    """Replace the database with the backup's and put its bytes into storage; returns the storage
    check of the result. Stop the registry (web, workers) first."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{directory} holds no {MANIFEST}: not a backup") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"Unknown backup format {manifest.get('format')!r}")
    vendor = connection.vendor
    if manifest["database"] != vendor:
        raise BackupError(
            f"This is a {manifest['database']} backup; the configured database is {vendor} (restore it into the "
            "same kind of database)"
        )
    if not force and _has_users():
        raise BackupError("The database is not empty (it has users): pass --force to replace it")

    say(f"Restoring the {vendor} database")
    if vendor == "sqlite":
        source = sqlite3.connect(directory / SQLITE_FILE)
        try:
            connection.ensure_connection()
            source.backup(connection.connection)
        finally:
            source.close()
    else:
        _pg_restore(directory / PG_FILE)
    connection.close()  # nothing cached from before the restore

    say("Restoring storage")
    copied = _copy_in(consistency.storage_layout(), directory / STORAGE, hardlink=hardlink)
    say(f"  {copied.files} files, {copied.bytes} bytes")
    _copy_keys_in(directory / KEYS, say)
    if migrate:
        call_command("migrate", interactive=False, verbosity=0)
    return consistency.storage_check()


def _has_users() -> bool:
    table = get_user_model()._meta.db_table
    if table not in connection.introspection.table_names():
        return False
    return get_user_model().objects.exists()


def _copy_in(layout: Layout, root: Path, *, hardlink: bool) -> Copied:
    copied = Copied()
    if not root.is_dir():
        return copied
    for directory, _, files in os.walk(root):
        for file in files:
            path = Path(directory) / file
            name = path.relative_to(root).as_posix()
            medium, key = _target(layout, name)
            if medium is None:
                continue
            size = path.stat().st_size
            if medium.size(key) == size:
                continue  # already there (content-addressed, or a repeated restore)
            if hardlink and isinstance(medium, DirectoryMedium):
                target = medium.root / key
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copy2(path, target)
            else:
                with open(path, "rb") as stream:
                    medium.write(key, stream)
            copied.files += 1
            copied.bytes += size
    return copied


def _target(layout: Layout, name: str):
    if name.startswith(("blobs/", "squash/")):
        return layout.storage, name
    if name.startswith("build-packages/"):
        return layout.packages, layout.package_key(name.removeprefix("build-packages/"))
    if name.startswith("build-logs/"):
        return layout.packages, layout.log_prefix + name.removeprefix("build-logs/")
    return None, None


def _copy_keys_in(root: Path, say: Callable[[str], None]) -> None:
    for name, path in _key_files().items():
        source = root / name
        if not source.is_file():
            continue
        if path.is_file() and path.read_bytes() == source.read_bytes():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.restore")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        say(f"Restored {path} (restart the registry to use it)")
