"""The storage check (``manage.py storage_check``): does the database agree with storage?

Rows name stored bytes: Blob rows their blob files, READY squashed images their tarballs,
uploaded build packages their package files, archived builds their log archives. The check lists
the rows first and storage second, then compares:

- rows without bytes: a blob whose file is missing, or whose size (or, with ``verify_digests``,
  content hash) differs from its row; a cached squash tarball or build package or build log that
  is gone. Every one is looked at again on its own before it is reported, so a row a concurrent
  garbage collection pass removed between the two listings is not a false alarm;
- bytes without rows (orphans): blob files, upload files, squash tarballs, build packages and logs
  that no row names. Listing rows first means a push landing between the listings shows up here
  (young), never as a row without bytes.

Repairs (``repair=True``) use garbage collection's own rules and locks, so a repair never races a
push: orphan bytes go only once older than the grace period (uploads: also STRAY_UPLOAD_MIN_AGE)
and, for blobs, under the digest's lock after checking again that no row has appeared
(registry.gc._delete_blob, whose conditional delete also removes stale Blob rows); upload files
under the upload's lock when no session owns them. Bytes that do not match their row (truncated,
corrupted) cannot be served correctly: they are moved to ``quarantine/`` under the digest lock,
which turns them into missing bytes that a new push of the same content stores again. Missing
bytes cannot be invented: with ``unlink_missing=True`` the blob's repository links are removed
(under the digest lock, only while the bytes are still missing) so that pulls answer
BLOB_UNKNOWN from the database on every backend and a client pushing that content uploads it
again; manifests and tags are kept. Without it they are only reported.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from builds.models import FINAL_PHASES, Build, BuildPackage
from registry import gc
from registry.locks import digest_lock
from registry.models import Blob, Manifest, ManifestBlob, ManifestChild, RepositoryBlob, Tag
from registry.storage import COPY_BUFFER, blob_name, get_blob_store
from squash.models import SquashedImage

LIST_PAGE_SIZE = 1000

# Areas of storage, by what names them.
BLOB = "blob"
UPLOAD = "upload"
SQUASH = "squash"
PACKAGE = "package"
LOG = "log"
QUARANTINE = "quarantine"
UNKNOWN = "unknown"


# ---------------------------------------------------------------------------------------------
# Storage media: every stored object, listed behind the stores' backs


@dataclass(frozen=True)
class Stored:
    """One stored file or object: its medium, its key there, what area it belongs to."""

    medium: Medium
    key: str
    area: str
    size: int
    modified: float  # seconds since the epoch


class Medium:
    """A place bytes are kept: a directory or an S3 bucket, with keys relative to it."""

    def objects(self, page_size: int = LIST_PAGE_SIZE) -> Iterator[tuple[str, int, float]]:
        raise NotImplementedError

    def size(self, key: str) -> int | None:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def write(self, key: str, stream: BinaryIO) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def move(self, key: str, new_key: str) -> None:
        raise NotImplementedError


class DirectoryMedium(Medium):
    def __init__(self, root: str | Path, skip: tuple[str, ...] = ()):
        self.root = Path(root)
        self.skip = skip  # key prefixes that are not stored objects (lock files, spool files)

    def _path(self, key: str) -> Path:
        return self.root / key

    def objects(self, page_size: int = LIST_PAGE_SIZE) -> Iterator[tuple[str, int, float]]:
        if not self.root.is_dir():
            return
        for directory, subdirectories, files in os.walk(self.root):
            relative = os.path.relpath(directory, self.root)
            prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
            subdirectories[:] = [d for d in subdirectories if not f"{prefix}{d}/".startswith(self.skip)]
            for name in files:
                key = prefix + name
                try:
                    stat = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue  # removed while we listed
                yield key, stat.st_size, stat.st_mtime

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def write(self, key: str, stream: BinaryIO) -> None:
        # Written aside and renamed: a reader never sees half a file under its final name.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.restore-{os.getpid()}")
        with open(part, "wb") as out:
            shutil.copyfileobj(stream, out, COPY_BUFFER)
        os.replace(part, path)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def move(self, key: str, new_key: str) -> None:
        target = self._path(new_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(key), target)


class BucketMedium(Medium):
    def __init__(self, bucket):
        self.bucket = bucket  # a boto3 Bucket resource
        self.client = bucket.meta.client

    def objects(self, page_size: int = LIST_PAGE_SIZE) -> Iterator[tuple[str, int, float]]:
        # ListObjectsV2 answers at most 1000 keys a call: follow the continuation tokens.
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket.name, PaginationConfig={"PageSize": page_size}
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"], item["LastModified"].timestamp()

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket.name, Key=key)["ContentLength"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def open(self, key: str) -> BinaryIO:
        return self.bucket.Object(key).get()["Body"]

    def write(self, key: str, stream: BinaryIO) -> None:
        self.bucket.Object(key).upload_fileobj(stream)

    def delete(self, key: str) -> None:
        self.bucket.Object(key).delete()

    def move(self, key: str, new_key: str) -> None:
        self.bucket.Object(new_key).copy({"Bucket": self.bucket.name, "Key": key})
        self.bucket.Object(key).delete()


_STORAGE_AREAS = (("blobs/", BLOB), ("uploads/", UPLOAD), ("squash/", SQUASH), ("quarantine/", QUARANTINE))


@dataclass(frozen=True)
class Layout:
    """Where each kind of stored thing lives for the configured backend."""

    storage: Medium  # blobs, uploads, squash tarballs, quarantine
    packages: Medium  # build packages and build logs (the same bucket on S3)
    package_prefix: str
    log_prefix: str

    def media(self) -> list[Medium]:
        return [self.storage] if self.packages is self.storage else [self.storage, self.packages]

    def classify(self, medium: Medium, key: str) -> str:
        if medium is self.storage:
            for prefix, area in _STORAGE_AREAS:
                if key.startswith(prefix):
                    return area
        if medium is self.packages:
            if key.startswith(self.log_prefix):
                return LOG
            rest = key.removeprefix(self.package_prefix)
            if key.startswith(self.package_prefix) and rest and "/" not in rest:
                return PACKAGE
        return UNKNOWN

    def package_key(self, package_uuid) -> str:
        return f"{self.package_prefix}{package_uuid}"

    def log_key(self, build_uuid) -> str:
        return f"{self.log_prefix}{build_uuid}.jsonl.gz"

    def listing(self, page_size: int = LIST_PAGE_SIZE) -> Iterator[Stored]:
        for medium in self.media():
            for key, size, modified in medium.objects(page_size):
                yield Stored(medium, key, self.classify(medium, key), size, modified)


def storage_layout() -> Layout:
    """The layout of the configured storage (the same names registry.storage, squash.store and
    builds.packages use)."""
    store = get_blob_store()
    if settings.STORAGE_BACKEND == "s3":
        medium = BucketMedium(store._bucket)
        return Layout(medium, medium, "build-packages/", "build-logs/")
    storage = DirectoryMedium(settings.STORAGE_DIR, skip=("locks/", "squash/parts/"))
    packages = DirectoryMedium(settings.BUILD_PACKAGE_DIR, skip=("tmp/",))
    return Layout(storage, packages, "", "logs/")


def blob_digest_of(key: str) -> str | None:
    """``blobs/sha256/ab/abcd...`` -> ``sha256:abcd...``; None for anything else."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "blobs" or not parts[3].startswith(parts[2]) or len(parts[2]) != 2:
        return None
    digest = f"{parts[1]}:{parts[3]}"
    return digest if blob_name(digest) == key else None


def upload_id_of(key: str) -> str:
    """``uploads/<id>``, ``uploads/<id>.lock`` (filesystem) or ``uploads/<id>/<part>`` (S3)."""
    return key.split("/")[1].removesuffix(".lock")


# ---------------------------------------------------------------------------------------------
# Findings


@dataclass
class Finding:
    """One disagreement between the database and storage, and what a repair did about it.

    ``problem`` is False for what is expected to resolve itself (orphans still within the grace
    period: a push or an upload may be writing them) and for notes (files of unknown kind).
    """

    kind: str
    name: str
    problem: bool = True
    detail: dict = field(default_factory=dict)
    repair: str = ""
    resolved: bool = False

    @property
    def open(self) -> bool:
        return self.problem and not self.resolved


KINDS = {
    "blob_missing": "blob rows whose bytes are missing",
    "blob_corrupt": "blobs whose bytes differ from their row (size or digest)",
    "blob_orphan": "blob bytes no row names",
    "upload_orphan": "upload files no session owns",
    "squash_missing": "cached squashed images whose tarball is missing",
    "squash_orphan": "squash tarballs no row names",
    "package_missing": "uploaded build packages whose bytes are missing",
    "package_orphan": "build package files no row names",
    "log_missing": "archived build logs that are missing",
    "log_orphan": "build log archives no build names",
    "unknown": "stored files the registry does not know",
}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: dict = field(default_factory=dict)
    affected: list[dict] = field(default_factory=list)
    repaired: bool = False
    blob_rows: dict[str, int] = field(default_factory=dict, repr=False)  # digest -> Blob id, for repairs

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.open]

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def as_json(self) -> dict:
        return {
            "clean": not self.problems,
            "problems": len(self.problems),
            "repaired": self.repaired,
            "checked": self.checked,
            "findings": [asdict(f) for f in self.findings],
            "affected": self.affected,
        }


# ---------------------------------------------------------------------------------------------
# The check


def storage_check(
    *,
    repair: bool = False,
    unlink_missing: bool = False,
    verify_digests: bool = False,
    now: datetime | None = None,
    page_size: int = LIST_PAGE_SIZE,
) -> Report:
    """Compare the database with storage; repair what may be repaired when asked.

    ``now`` moves the check in time (tests: orphans' ages against the grace period).
    """
    now = now or timezone.now()
    layout = storage_layout()
    report = Report()

    # Rows first (see the module doc), then storage.
    blobs = {digest: (pk, size) for pk, digest, size in Blob.objects.values_list("pk", "digest", "size").iterator()}
    squash_rows = dict(
        SquashedImage.objects.filter(state=SquashedImage.State.READY)
        .exclude(storage_name="")
        .values_list("storage_name", "pk")
    )
    squash_named = set(SquashedImage.objects.exclude(storage_name="").values_list("storage_name", flat=True))
    packages = {str(u) for u in BuildPackage.objects.values_list("uuid", flat=True)}
    uploaded = {str(u) for u in BuildPackage.objects.filter(uploaded__isnull=False).values_list("uuid", flat=True)}
    archived = {str(u) for u in Build.objects.filter(logs_archived=True).values_list("uuid", flat=True)}

    stored_blobs: dict[str, Stored] = {}
    uploads: dict[str, float] = {}
    squash_files: dict[str, Stored] = {}
    package_files: dict[str, Stored] = {}
    log_files: dict[str, Stored] = {}
    listed = quarantined = 0
    for item in layout.listing(page_size):
        listed += 1
        if item.area == BLOB and (digest := blob_digest_of(item.key)):
            stored_blobs[digest] = item
        elif item.area == UPLOAD:
            upload_id = upload_id_of(item.key)
            uploads[upload_id] = max(item.modified, uploads.get(upload_id, 0.0))
        elif item.area == SQUASH:
            squash_files[item.key] = item
        elif item.area == PACKAGE:
            package_files[item.key.removeprefix(layout.package_prefix)] = item
        elif item.area == LOG:
            log_files[item.key.removeprefix(layout.log_prefix).removesuffix(".jsonl.gz")] = item
        elif item.area == QUARANTINE:
            quarantined += 1
        else:  # unknown, or a name under blobs/ that is no digest's
            report.findings.append(Finding("unknown", item.key, problem=False, detail={"size": item.size}))
    report.checked = {
        "blob_rows": len(blobs),
        "stored_objects": listed,
        "stored_blobs": len(stored_blobs),
        "stored_blob_bytes": sum(item.size for item in stored_blobs.values()),
        "digests_verified": 0,
        "quarantined": quarantined,
    }

    cutoff = (now - gc.grace_period()).timestamp()
    stray_cutoff = min(now - gc.grace_period(), now - gc.STRAY_UPLOAD_MIN_AGE).timestamp()
    store = get_blob_store()

    # Blobs: rows without bytes, bytes that differ, bytes without rows.
    for digest, (_, size) in blobs.items():
        item = stored_blobs.get(digest)
        if item is None:
            report.findings.append(Finding("blob_missing", digest, detail={"size": size}))
        elif item.size != size:
            report.findings.append(
                Finding("blob_corrupt", digest, detail={"size": size, "stored_size": item.size, "key": item.key})
            )
        elif verify_digests:
            actual = _hash(item.medium, item.key, digest.split(":", 1)[0])
            report.checked["digests_verified"] += 1
            if actual != digest:
                report.findings.append(
                    Finding("blob_corrupt", digest, detail={"size": size, "actual_digest": actual, "key": item.key})
                )
    for digest, item in stored_blobs.items():
        if digest not in blobs:
            report.findings.append(_orphan("blob_orphan", digest, item.modified, now, cutoff, {"size": item.size}))
    for upload_id, modified in uploads.items():
        if not gc._session_exists(upload_id):  # else an upload in progress: its session names it
            report.findings.append(_orphan("upload_orphan", upload_id, modified, now, stray_cutoff, {}))

    # Squashed tarballs, build packages, build logs.
    for name, pk in squash_rows.items():
        if name not in squash_files:
            report.findings.append(Finding("squash_missing", name, detail={"row": pk}))
    for name, item in squash_files.items():
        if name not in squash_named:
            report.findings.append(_orphan("squash_orphan", name, item.modified, now, cutoff, {"size": item.size}))
    for package_uuid in uploaded - set(package_files):
        waiting = Build.objects.filter(package__uuid=package_uuid).exclude(phase__in=FINAL_PHASES)
        builds = list(waiting.values_list("uuid", flat=True))
        # Only a build still to run needs the package; otherwise the row is stale (a repair drops it).
        report.findings.append(Finding("package_missing", package_uuid, detail={"builds": [str(b) for b in builds]}))
    package_cutoff = stray_cutoff  # published inside the transaction that records the upload
    for package_uuid, item in package_files.items():
        if package_uuid not in packages:
            report.findings.append(
                _orphan("package_orphan", package_uuid, item.modified, now, package_cutoff, {"size": item.size})
            )
    for build_uuid in archived - set(log_files):
        report.findings.append(Finding("log_missing", build_uuid))
    for build_uuid, item in log_files.items():
        if build_uuid not in archived:
            report.findings.append(
                _orphan("log_orphan", build_uuid, item.modified, now, package_cutoff, {"size": item.size})
            )

    _confirm(report, layout, store)
    report.blob_rows = {digest: pk for digest, (pk, _) in blobs.items()}
    if repair:
        storage_repair(report, unlink_missing=unlink_missing)
    else:
        report.affected = _affected(report)
    return report


def storage_repair(report: Report, *, unlink_missing: bool = False) -> Report:
    """Repair what ``report`` found (each finding is looked at again under its lock first)."""
    layout, store = storage_layout(), get_blob_store()
    report.repaired = True
    for finding in list(report.findings):
        handler = _REPAIRS.get(finding.kind)
        if finding.open and handler is not None:
            handler(finding, layout, store, report.blob_rows, unlink_missing)
    report.affected = _affected(report)
    return report


def _affected(report: Report) -> list[dict]:
    damaged = [f.name for f in report.findings if f.kind in ("blob_missing", "blob_corrupt") and f.open]
    return affected_by_missing(damaged)


def _orphan(kind: str, name: str, modified: float, now: datetime, cutoff: float, detail: dict) -> Finding:
    detail = dict(detail, age_seconds=int(now.timestamp() - modified))
    if modified >= cutoff:
        return Finding(kind, name, problem=False, detail=dict(detail, note="within the grace period"))
    return Finding(kind, name, detail=detail)


def _hash(medium: Medium, key: str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    stream = medium.open(key)
    try:
        while chunk := stream.read(COPY_BUFFER):
            hasher.update(chunk)
    finally:
        stream.close()
    return f"{algorithm}:{hasher.hexdigest()}"


def _confirm(report: Report, layout: Layout, store) -> None:
    """Look at each row without bytes again: a concurrent pass may have removed the row (and then
    the bytes) between our two listings, or a push stored the bytes meanwhile."""
    kept = []
    for finding in report.findings:
        if finding.kind == "blob_missing":
            if not Blob.objects.filter(digest=finding.name).exists() or store.exists(finding.name):
                continue
        elif finding.kind == "squash_missing":
            row = SquashedImage.objects.filter(pk=finding.detail["row"], state=SquashedImage.State.READY).first()
            if row is None or row.storage_name != finding.name or layout.storage.size(finding.name) is not None:
                continue
        elif finding.kind == "package_missing":
            if layout.packages.size(layout.package_key(finding.name)) is not None:
                continue
        elif finding.kind == "log_missing":
            if layout.packages.size(layout.log_key(finding.name)) is not None:
                continue
        kept.append(finding)
    report.findings = kept


def affected_by_missing(digests: list[str]) -> list[dict]:
    """The manifests that refer to these blobs, and the indexes listing them, with their alive tags:
    what a pull may fail on."""
    if not digests:
        return []
    missing_of: dict[int, set[str]] = {}
    for manifest_id, digest in ManifestBlob.objects.filter(blob__digest__in=digests).values_list(
        "manifest_id", "blob__digest"
    ):
        missing_of.setdefault(manifest_id, set()).add(digest)
    via: dict[int, set[int]] = {}
    frontier = set(missing_of)
    while frontier:  # up through indexes (of indexes)
        parents = ManifestChild.objects.filter(child_id__in=frontier).values_list("manifest_id", "child_id")
        frontier = set()
        for parent, child in parents:
            if parent not in via and parent not in missing_of:
                frontier.add(parent)
            via.setdefault(parent, set()).add(child)
    ids = set(missing_of) | set(via)
    tags: dict[int, list[str]] = {}
    for manifest_id, name in (
        Tag.objects.filter(manifest_id__in=ids, lifetime_end__isnull=True, hidden=False)
        .order_by("name")
        .values_list("manifest_id", "name")
    ):
        tags.setdefault(manifest_id, []).append(name)
    rows = Manifest.objects.filter(pk__in=ids).values_list(
        "pk", "repository__namespace__name", "repository__name", "digest"
    )
    digest_of = {pk: digest for pk, _, _, digest in rows}
    affected = []
    for pk, namespace, name, digest in sorted(rows, key=lambda r: (r[1], r[2], r[3])):
        entry = {"repository": f"{namespace}/{name}", "manifest": digest, "tags": tags.get(pk, [])}
        if pk in missing_of:
            entry["missing_blobs"] = sorted(missing_of[pk])
        if pk in via:
            entry["children_affected"] = sorted(digest_of[c] for c in via[pk] if c in digest_of)
        affected.append(entry)
    return affected


# ---------------------------------------------------------------------------------------------
# Repairs


def _repair_corrupt(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    digest = finding.name
    key = blob_name(digest)
    with digest_lock(digest, wait=False) as acquired:
        if not acquired:
            finding.repair = "skipped: a push of this digest holds its lock"
            return
        # Move the bytes aside (kept for the operator, never served): they become missing bytes,
        # which a push of the same content stores again.
        quarantine = f"quarantine/{digest.replace(':', '/')}-{int(time.time())}"
        try:
            layout.storage.move(key, quarantine)
        except FileNotFoundError:
            quarantine = "nothing: the bytes were gone already"
    finding.repair = f"bytes moved to {quarantine}"
    finding.detail["quarantined_as"] = quarantine
    _repair_missing(finding, layout, store, blobs, unlink_missing)


def _repair_missing(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    digest = finding.name
    pk = blobs[digest]
    referenced = (
        RepositoryBlob.objects.filter(blob_id=pk).exists() or ManifestBlob.objects.filter(blob_id=pk).exists()
    )
    done = [finding.repair] if finding.repair else []
    if not referenced:
        # A stale row nothing refers to: garbage collection's own conditional delete, under the
        # digest lock (it also deletes bytes, which are gone already).
        if gc._delete_blob(store, pk, digest, None) is not None or not Blob.objects.filter(pk=pk).exists():
            finding.repair = "; ".join([*done, "stale row deleted"])
            finding.resolved = True
            return
    if not unlink_missing:
        finding.repair = "; ".join([*done, "left as is: no copy of the bytes (see --unlink-missing)"])
        return
    with digest_lock(digest, wait=False) as acquired:
        if not acquired:
            finding.repair = "; ".join([*done, "skipped: a push of this digest holds its lock"])
            return
        if store.exists(digest):  # a push stored the bytes again meanwhile
            finding.repair = "; ".join([*done, "bytes stored again by a push"])
            finding.resolved = True
            return
        with transaction.atomic():
            unlinked, _ = RepositoryBlob.objects.filter(blob_id=pk).delete()
    finding.repair = "; ".join(
        [*done, f"{unlinked} repository links removed: pulls answer BLOB_UNKNOWN until it is pushed again"]
    )
    finding.detail["unlinked"] = unlinked


def _repair_blob_orphan(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    digest = finding.name
    # As garbage collection deletes bytes: under the digest lock a publisher holds from its "are
    # the bytes stored?" check until its row is committed, and only while no row has the digest.
    with digest_lock(digest, wait=False) as acquired:
        if not acquired:
            finding.repair = "skipped: a push of this digest holds its lock"
            return
        if Blob.objects.filter(digest=digest).exists():
            finding.repair = "kept: a row was recorded meanwhile"
            finding.resolved = True
            return
        store.delete_blob(digest)
    finding.repair = "deleted"
    finding.resolved = True


def _repair_upload_orphan(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    upload_id = finding.name
    with store.upload_lock(upload_id):
        if gc._session_exists(upload_id):
            finding.repair = "kept: a session owns it"
        else:
            store.upload_delete(upload_id, [])
            finding.repair = "deleted"
    finding.resolved = True


def _repair_squash_orphan(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    # Looked up again: a claim may have named this file since the listing (as squash GC does).
    if SquashedImage.objects.filter(storage_name=finding.name).exists():
        finding.repair = "kept: a row names it now"
    else:
        layout.storage.delete(finding.name)
        finding.repair = "deleted"
    finding.resolved = True


def _repair_squash_missing(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    # Only a cache entry: without its row the next download flattens the image again.
    deleted, _ = SquashedImage.objects.filter(
        pk=finding.detail["row"], state=SquashedImage.State.READY, storage_name=finding.name
    ).delete()
    finding.repair = "cache row deleted (flattened again on the next download)" if deleted else "row changed meanwhile"
    finding.resolved = True


def _repair_package_orphan(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    if BuildPackage.objects.filter(uuid=finding.name).exists():
        finding.repair = "kept: a row names it now"
    else:
        layout.packages.delete(layout.package_key(finding.name))
        finding.repair = "deleted"
    finding.resolved = True


def _repair_package_missing(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    package = BuildPackage.objects.filter(uuid=finding.name).first()
    if package is None:
        finding.repair, finding.resolved = "row deleted meanwhile", True
    elif Build.objects.filter(package=package).exclude(phase__in=FINAL_PHASES).exists():
        finding.repair = "left as is: a build waits for it (cancel the build, or start it again)"
    else:
        package.delete()  # the builds that used it are over: they keep their row, without a package
        finding.repair, finding.resolved = "stale row deleted", True


def _repair_log_orphan(finding: Finding, layout: Layout, store, blobs: dict, unlink_missing: bool) -> None:
    if Build.objects.filter(uuid=finding.name, logs_archived=True).exists():
        finding.repair = "kept: its build is archived now"
    else:
        layout.packages.delete(layout.log_key(finding.name))
        finding.repair = "deleted"
    finding.resolved = True


_REPAIRS = {
    "blob_missing": _repair_missing,
    "blob_corrupt": _repair_corrupt,
    "blob_orphan": _repair_blob_orphan,
    "upload_orphan": _repair_upload_orphan,
    "squash_orphan": _repair_squash_orphan,
    "squash_missing": _repair_squash_missing,
    "package_orphan": _repair_package_orphan,
    "package_missing": _repair_package_missing,
    "log_orphan": _repair_log_orphan,
}
