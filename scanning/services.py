"""Scanning services: queue a manifest's scan at push, index layers, compose manifests, import
advisories and re-match, announce new findings.

Storage reads happen outside transactions; each manifest's result is written in one
transaction with its notifications (the outbox rows go with the change they report).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from notifications.services import event_emit
from registry import errors as registry_errors
from registry.manifests import FOREIGN_LAYER_TYPES, IMAGE_CONFIG_TYPES, parse_manifest
from registry.models import Manifest, ManifestChild, Tag
from registry.storage import get_blob_store
from scanning import cvss, layers, osv, versions
from scanning.models import (
    SCANNER_VERSION,
    Advisory,
    AdvisoryImport,
    AffectedPackage,
    Finding,
    LayerIndex,
    LayerPackage,
    ManifestPackage,
    ManifestScan,
    NotifiedFinding,
    Package,
    PackageKind,
)

log = logging.getLogger(__name__)

CHUNK = 500
VERSION_FORMATS = {
    PackageKind.DPKG: versions.DPKG,
    PackageKind.APK: versions.APK,
    PackageKind.RPM: versions.RPM,
    PackageKind.PYTHON: versions.PEP440,
    PackageKind.NPM: versions.SEMVER,
}


def scanning_enabled() -> bool:
    return getattr(settings, "FEATURE_SECURITY_SCANNER", True)


# ---------------------------------------------------------------------------------------------
# Queueing (the push hook)


def scan_queue(*, manifest: Manifest) -> ManifestScan | None:
    """Record that ``manifest`` waits for its scan and queue the task once the push commits.

    Called by ``registry.services.manifest_put`` inside its transaction, for a manifest it has
    just created.
    Artifacts (Helm charts, signatures...) are marked unsupported at once: they have no layers
    to index. The queued row is what the sweeper finds again if the task is lost.
    """
    if not scanning_enabled():
        return None
    supported = manifest.is_index or manifest.config_media_type in IMAGE_CONFIG_TYPES
    # The manifest row was made in this same transaction, so it has no scan yet: one INSERT on
    # the push path, no look-up first.
    scan = ManifestScan.objects.create(
        manifest=manifest,
        status=ManifestScan.Status.QUEUED if supported else ManifestScan.Status.UNSUPPORTED,
        error="" if supported else "not a container image (an artifact has no layers to index)",
    )
    if supported:
        manifest_id = manifest.pk
        transaction.on_commit(lambda: _queue_index(manifest_id))
    return scan


def scan_tag_retargeted(*, manifest: Manifest) -> None:
    """A tag now points at ``manifest`` (a push by tag, a move, a restore): once that commits,
    announce the findings that are new for the repository (see ``tag_findings_announce``).

    Called by ``registry.services._retarget`` inside its transaction. A manifest scanned
    before the tag existed (pushed by digest, or under another tag) has no scan to come that
    would announce them. Artifacts have no findings: nothing is queued for them.
    """
    if not scanning_enabled():
        return
    if not manifest.is_index and manifest.config_media_type not in IMAGE_CONFIG_TYPES:
        return
    manifest_id = manifest.pk
    transaction.on_commit(lambda: _announce_after_commit(manifest_id))


def _announce_after_commit(manifest_id: int) -> None:
    # After the tag's commit: a failure here must not turn a stored push into an error.
    try:
        tag_findings_announce(manifest_id=manifest_id)
    except Exception:
        log.warning("could not announce the findings of manifest %s for its new tag", manifest_id, exc_info=True)


def tag_findings_announce(*, manifest_id: int) -> int:
    """Emit ``vulnerability_found`` for the findings of a manifest a tag was just pointed at
    (an index: those of its children), once per advisory and repository as for a scan.

    Nothing while the manifest's scan is queued: the scan announces when it ends. Its scan row
    is locked first, and a scan locks it before it reads the tags, so a tag committed while the
    scan runs is announced by one of the two, never by neither.
    """
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                scan = ManifestScan.objects.select_for_update().filter(manifest_id=manifest_id).first()
                if scan is None or scan.status == ManifestScan.Status.QUEUED:
                    return 0
                children = set(ManifestChild.objects.filter(manifest_id=manifest_id).values_list("child_id", flat=True))
                if children:
                    return _announce(manifest_ids=children, pairs=None, only_parent=manifest_id)
                return _announce(manifest_ids={manifest_id}, pairs=None)
        except IntegrityError:
            # A concurrent announcement recorded the same finding first; the retry skips it.
            if attempt == 2:
                raise
    return 0


def _queue_index(manifest_id: int, countdown: float | None = None) -> None:
    from scanning import tasks  # tasks imports this module

    try:
        tasks.index_manifest.apply_async((manifest_id,), countdown=countdown)
    except Exception:
        log.warning("could not queue the scan of manifest %s; the sweeper will", manifest_id, exc_info=True)


def scans_sweep(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Queue again the scans left queued for a while (a broker that lost the task)."""
    cutoff = timezone.now() - older_than
    ids = list(
        ManifestScan.objects.filter(status=ManifestScan.Status.QUEUED, queued__lt=cutoff).values_list(
            "manifest_id", flat=True
        )[:1000]
    )
    for manifest_id in ids:
        _queue_index(manifest_id)
    return len(ids)


# ---------------------------------------------------------------------------------------------
# Layers


def layer_index(*, digest: str) -> LayerIndex:
    """Index one layer blob, or return its index when some manifest already had it read."""
    existing = LayerIndex.objects.filter(digest=digest).first()
    if existing is not None:
        return existing
    try:
        stream = get_blob_store().open_blob(digest)
    except (registry_errors.BlobUnknown, OSError):
        # Not recorded: the blob may still be on its way (another push), a later scan retries.
        raise layers.LayerError(f"layer {digest} is missing from storage") from None
    try:
        with stream:
            contents = layers.read_layer(stream)
    except layers.LayerError as exc:
        return _layer_save(digest, None, str(exc))
    return _layer_save(digest, contents, "")


def _layer_save(digest: str, contents: layers.LayerContents | None, error: str) -> LayerIndex:
    try:
        with transaction.atomic():
            if contents is None:
                return LayerIndex.objects.create(digest=digest, state=LayerIndex.State.FAILED, error=error)
            layer = LayerIndex.objects.create(
                digest=digest,
                state=LayerIndex.State.INDEXED,
                os_release=contents.os_release,
                package_files=sorted(contents.package_files),
                whiteouts=contents.whiteouts,
                opaque_dirs=contents.opaque_dirs,
            )
            LayerPackage.objects.bulk_create(
                [
                    LayerPackage(
                        layer=layer,
                        path=path,
                        kind=r.kind,
                        name=r.name[:255],
                        version=r.version[:255],
                        source_name=r.source_name[:255],
                        source_version=r.source_version[:255],
                        arch=r.arch[:64],
                    )
                    for path, records in contents.package_files.items()
                    for r in records
                ],
                batch_size=CHUNK,
            )
            return layer
    except IntegrityError:
        # Another scan of a manifest sharing this layer recorded it first: the same result.
        return LayerIndex.objects.get(digest=digest)


def _covered(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + "/") or p == "" for p in prefixes)


def compose(layer_rows: list[LayerIndex]) -> tuple[dict, list[tuple[LayerPackage, str]]]:
    """The OS fields and the packages of a filesystem made of ``layer_rows`` (bottom first).

    A higher layer's whiteouts remove lower files; a higher copy of a package database replaces
    the lower one; a package keeps the layer that first added it as long as every later copy
    of its database still lists the same name and version.
    """
    packages_by_layer: dict[int, dict[str, list[LayerPackage]]] = defaultdict(lambda: defaultdict(list))
    for lp in LayerPackage.objects.filter(layer__in=[row.pk for row in layer_rows]).order_by("pk"):
        packages_by_layer[lp.layer_id][lp.path].append(lp)
    files: dict[str, list[tuple[LayerPackage, str]]] = {}
    os_files: dict[str, dict] = {}
    for row in layer_rows:
        removed = [*row.whiteouts, *row.opaque_dirs]
        if removed:
            for table in (files, os_files):
                for path in [p for p in table if _covered(p, row.opaque_dirs) or _covered(p, row.whiteouts)]:
                    del table[path]
        os_files.update(row.os_release)
        for path in row.package_files:
            before = {(lp.name, lp.version, lp.arch): added for lp, added in files.get(path, [])}
            files[path] = [
                (lp, before.get((lp.name, lp.version, lp.arch), row.digest)) for lp in packages_by_layer[row.pk][path]
            ]
    os_fields = os_files.get("etc/os-release") or os_files.get("usr/lib/os-release") or {}
    return os_fields, [item for path in sorted(files) for item in files[path]]


def distro_ecosystem(os_fields: dict) -> str:
    """The OSV ecosystem of the distribution (``Debian:12``, ``Ubuntu:22.04``, ``Alpine:v3.19``)."""
    os_id = (os_fields.get("ID") or "").lower()
    version = os_fields.get("VERSION_ID") or ""
    if os_id == "debian":
        return f"Debian:{version.split('.')[0]}" if version else "Debian"
    if os_id == "ubuntu":
        return f"Ubuntu:{version}" if version else "Ubuntu"
    if os_id == "alpine":
        match = re.match(r"(\d+)\.(\d+)", version)
        return f"Alpine:v{match.group(1)}.{match.group(2)}" if match else "Alpine"
    return f"{os_id}:{version}" if os_id and version else os_id


def _package_identity(lp: LayerPackage, distro: str) -> tuple[str, str, str, str, str, str]:
    """(ecosystem, kind, name, version, match_name, match_version) of a recorded package."""
    if lp.kind == PackageKind.PYTHON:
        return "PyPI", lp.kind, lp.name, lp.version, osv.normalize_name("PyPI", lp.name), lp.version
    if lp.kind == PackageKind.NPM:
        return "npm", lp.kind, lp.name, lp.version, lp.name, lp.version
    return distro, lp.kind, lp.name, lp.version, lp.source_name or lp.name, lp.source_version or lp.version


def _packages_upsert(identities: set[tuple]) -> tuple[dict[tuple, int], list[int]]:
    """Ids of the Package rows for ``identities``, and which of them are new (to be matched)."""
    ids: dict[tuple, int] = {}
    fields = ("ecosystem", "kind", "name", "version", "match_name", "match_version")

    def load(keys):
        by_name: dict[str, list] = defaultdict(list)
        for key in keys:
            by_name[key[2]].append(key)
        wanted = set(keys)
        names = list(by_name)
        for start in range(0, len(names), CHUNK):
            rows = Package.objects.filter(name__in=names[start : start + CHUNK]).values_list("pk", *fields)
            for pk, *key in rows:
                if tuple(key) in wanted:
                    ids[tuple(key)] = pk

    load(identities)
    missing = [key for key in identities if key not in ids]
    if missing:
        Package.objects.bulk_create(
            [Package(version_format=VERSION_FORMATS[key[1]], **dict(zip(fields, key, strict=True))) for key in missing],
            batch_size=CHUNK,
            ignore_conflicts=True,
        )
        load(missing)
    return ids, [ids[key] for key in missing if key in ids]


# ---------------------------------------------------------------------------------------------
# Manifests


def manifest_index(*, manifest_id: int) -> ManifestScan | None:
    """Scan one manifest (an index: each child, then the index's combined status)."""
    manifest = Manifest.objects.select_related("repository__namespace").filter(pk=manifest_id).first()
    if manifest is None:
        return None  # deleted meanwhile
    if manifest.is_index:
        return _index_of_children(manifest)
    scan, _ = ManifestScan.objects.get_or_create(manifest=manifest)
    if manifest.config_media_type not in IMAGE_CONFIG_TYPES:
        return _scan_finish(scan, ManifestScan.Status.UNSUPPORTED, "not a container image (an artifact)")
    from scanning import clair  # it uses this module's helpers

    if clair.clair_enabled():
        # CLAIR_URL set: Clair v4 indexes and matches instead, into the same rows.
        return clair.manifest_scan(manifest=manifest, scan=scan)
    parsed = parse_manifest(bytes(manifest.raw), manifest.media_type)
    layer_rows = []
    for descriptor in parsed.layers:
        if descriptor.media_type in FOREIGN_LAYER_TYPES:
            continue  # not in our storage (Windows base layers): nothing to read
        if descriptor.media_type not in layers.TAR_TYPES:
            return _scan_finish(
                scan,
                ManifestScan.Status.UNSUPPORTED,
                f"layer {descriptor.digest} has media type {descriptor.media_type}",
            )
        try:
            row = layer_index(digest=descriptor.digest)
        except layers.LayerError as exc:
            return _scan_finish(scan, ManifestScan.Status.FAILED, str(exc))
        if row.state == LayerIndex.State.FAILED:
            return _scan_finish(scan, ManifestScan.Status.FAILED, f"layer {row.digest}: {row.error}")
        layer_rows.append(row)
    os_fields, found = compose(layer_rows)
    distro = distro_ecosystem(os_fields)
    first: dict[tuple, tuple[LayerPackage, str]] = {}
    for lp, added_by in found:
        first.setdefault(_package_identity(lp, distro), (lp, added_by))
    with transaction.atomic():
        ids, new_ids = _packages_upsert(set(first))
        ManifestPackage.objects.filter(manifest=manifest).delete()
        ManifestPackage.objects.bulk_create(
            [
                ManifestPackage(manifest=manifest, package_id=ids[key], added_by=added_by, path=lp.path[:1024])
                for key, (lp, added_by) in first.items()
            ],
            batch_size=CHUNK,
        )
        if new_ids:
            _match(new_ids)
        scan = ManifestScan.objects.select_for_update().get(pk=scan.pk)
        scan.status = ManifestScan.Status.SCANNED
        scan.error = ""
        scan.os_id = os_fields.get("ID", "")[:64]
        scan.os_version = os_fields.get("VERSION_ID", "")[:64]
        scan.os_name = os_fields.get("PRETTY_NAME", "")[:255]
        scan.ecosystem = distro[:100]
        scan.scanner_version = SCANNER_VERSION
        scan.indexed = scan.matched = timezone.now()
        scan.save()
        parents = _parents([manifest.pk])
        _summaries_refresh([manifest.pk, *parents])
        _announce(manifest_ids={manifest.pk}, pairs=None)
    scan.refresh_from_db()
    return scan


def _scan_finish(scan: ManifestScan, status: str, error: str) -> ManifestScan:
    with transaction.atomic():
        ManifestPackage.objects.filter(manifest_id=scan.manifest_id).delete()
        scan.status, scan.error, scan.summary = status, error[:4000], {}
        scan.indexed = timezone.now()
        scan.save()
        _summaries_refresh(_parents([scan.manifest_id]))
    return scan


def _parents(manifest_ids: Iterable[int]) -> list[int]:
    return list(
        ManifestChild.objects.filter(child_id__in=list(manifest_ids)).values_list("manifest_id", flat=True).distinct()
    )


def _index_of_children(manifest: Manifest) -> ManifestScan:
    children = list(manifest.children.all())
    done = set(
        ManifestScan.objects.filter(manifest__in=children)
        .exclude(status=ManifestScan.Status.QUEUED)
        .values_list("manifest_id", flat=True)
    )
    for child in children:
        if child.pk not in done:
            manifest_index(manifest_id=child.pk)
    with transaction.atomic():
        scan, _ = ManifestScan.objects.select_for_update().get_or_create(manifest=manifest)
        scan.indexed = scan.matched = timezone.now()
        scan.save()
        _summaries_refresh([manifest.pk])
        _announce(manifest_ids={child.pk for child in children}, pairs=None, only_parent=manifest.pk)
    scan.refresh_from_db()
    return scan


def _index_status(statuses: list[str]) -> tuple[str, str]:
    S = ManifestScan.Status
    if not statuses:
        return S.UNSUPPORTED, "the index lists no manifests"
    if S.QUEUED in statuses:
        return S.QUEUED, ""
    if S.FAILED in statuses:
        return S.FAILED, "a manifest of the index could not be scanned"
    if all(s == S.UNSUPPORTED for s in statuses):
        return S.UNSUPPORTED, "no manifest of the index is a scannable image"
    return S.SCANNED, ""


# ---------------------------------------------------------------------------------------------
# Matching


def _affected_for(keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[int, list, list]]]:
    """Current (advisory id, sorted ranges, versions) per (ecosystem, match name)."""
    result: dict[tuple[str, str], list] = defaultdict(list)
    names = sorted({name for _, name in keys})
    for start in range(0, len(names), CHUNK):
        rows = AffectedPackage.objects.filter(
            name__in=names[start : start + CHUNK], advisory__withdrawn__isnull=True
        ).values_list("ecosystem", "name", "advisory_id", "ranges", "versions")
        for ecosystem, name, advisory_id, ranges, listed in rows:
            if (ecosystem, name) in keys:
                result[(ecosystem, name)].append((advisory_id, ranges, listed))
    return result


def _evaluate(packages: list[tuple[int, str, str, str, str]]) -> dict[tuple[int, int], str]:
    """{(package id, advisory id): fixed_by} for (id, ecosystem, format, match name, version)."""
    affected = _affected_for({(eco, name) for _, eco, _, name, _ in packages})
    found: dict[tuple[int, int], str] = {}
    for package_id, ecosystem, version_format, name, version in packages:
        for advisory_id, ranges, listed in affected.get((ecosystem, name), ()):
            try:
                hit, fixed_by = osv.affects(version_format, version, ranges, listed)
            except versions.VersionError:
                continue  # a version the ecosystem cannot order: only the exact list can match
            if hit:
                found[(package_id, advisory_id)] = fixed_by
    return found


def _match(package_ids: list[int]) -> tuple[set[tuple[int, int]], set[tuple[int, int]], set[int]]:
    """Bring the findings of ``package_ids`` up to date with the advisories in the database.

    Returns the (package, advisory) pairs added, those removed, and the packages whose
    findings changed in any way (added, removed, or a different fix version).
    """
    added: set[tuple[int, int]] = set()
    removed: set[tuple[int, int]] = set()
    changed: set[int] = set()
    for start in range(0, len(package_ids), CHUNK):
        chunk = package_ids[start : start + CHUNK]
        rows = list(
            Package.objects.filter(pk__in=chunk).values_list(
                "pk", "ecosystem", "version_format", "match_name", "match_version"
            )
        )
        wanted = _evaluate(rows)
        current = {
            (p, a): (pk, fixed)
            for pk, p, a, fixed in Finding.objects.filter(package_id__in=chunk).values_list(
                "pk", "package_id", "advisory_id", "fixed_by"
            )
        }
        gone = [current[pair][0] for pair in current if pair not in wanted]
        if gone:
            Finding.objects.filter(pk__in=gone).delete()
        new = [pair for pair in wanted if pair not in current]
        Finding.objects.bulk_create(
            [Finding(package_id=p, advisory_id=a, fixed_by=wanted[(p, a)][:255]) for p, a in new],
            batch_size=CHUNK,
            ignore_conflicts=True,
        )
        updated = [
            Finding(pk=current[pair][0], fixed_by=fixed[:255])
            for pair, fixed in wanted.items()
            if pair in current and current[pair][1] != fixed
        ]
        if updated:
            Finding.objects.bulk_update(updated, ["fixed_by"], batch_size=CHUNK)
        added.update(new)
        removed.update(pair for pair in current if pair not in wanted)
        changed.update(p for p, _ in new)
        changed.update(p for p, _ in current if (p, _) not in wanted)
        changed.update(f_pair[0] for f_pair in wanted if f_pair in current and current[f_pair][1] != wanted[f_pair])
    return added, removed, changed


def _empty_summary() -> dict:
    return {
        "packages": 0,
        "affected_packages": 0,
        "vulnerabilities": 0,
        "fixable": 0,
        "highest": None,
        "by_severity": {},
        "fixable_by_severity": {},
    }


def _summary_from(findings: Iterable[tuple[int, int, str, str]], packages: int) -> dict:
    """A summary from distinct (package, advisory, severity, fixed_by) findings."""
    summary = _empty_summary()
    summary["packages"] = packages
    affected = set()
    for package_id, _advisory_id, severity, fixed_by in findings:
        affected.add(package_id)
        summary["vulnerabilities"] += 1
        summary["by_severity"][severity] = summary["by_severity"].get(severity, 0) + 1
        if fixed_by:
            summary["fixable"] += 1
            summary["fixable_by_severity"][severity] = summary["fixable_by_severity"].get(severity, 0) + 1
    summary["affected_packages"] = len(affected)
    if summary["by_severity"]:
        summary["highest"] = max(summary["by_severity"], key=cvss.severity_rank)
    return summary


def _summaries_refresh(manifest_ids: Iterable[int]) -> int:
    """Recompute the cached counts of these manifests (indexes from their children)."""
    ids = sorted(set(manifest_ids))
    if not ids:
        return 0
    S = ManifestScan.Status
    scans = {s.manifest_id: s for s in ManifestScan.objects.filter(manifest_id__in=ids).select_related("manifest")}
    index_ids = [mid for mid, s in scans.items() if s.manifest.is_index]
    image_ids = [mid for mid, s in scans.items() if not s.manifest.is_index and s.status == S.SCANNED]
    for start in range(0, len(image_ids), CHUNK):
        chunk = image_ids[start : start + CHUNK]
        totals = dict(
            ManifestPackage.objects.filter(manifest_id__in=chunk)
            .values("manifest_id")
            .annotate(n=Count("id"))
            .values_list("manifest_id", "n")
        )
        findings: dict[int, list] = defaultdict(list)
        rows = ManifestPackage.objects.filter(manifest_id__in=chunk, package__findings__isnull=False).values_list(
            "manifest_id",
            "package_id",
            "package__findings__advisory_id",
            "package__findings__advisory__severity",
            "package__findings__fixed_by",
        )
        for manifest_id, *finding in rows.iterator(chunk_size=5000):
            findings[manifest_id].append(finding)
        for manifest_id in chunk:
            scans[manifest_id].summary = _summary_from(findings.get(manifest_id, ()), totals.get(manifest_id, 0))
    for index_id in index_ids:
        children = list(ManifestChild.objects.filter(manifest_id=index_id).values_list("child_id", flat=True))
        statuses = list(ManifestScan.objects.filter(manifest_id__in=children).values_list("status", flat=True))
        statuses += [S.QUEUED] * (len(children) - len(statuses))
        status, error = _index_status(statuses)
        scans[index_id].status, scans[index_id].error = status, error
        distinct = set(
            ManifestPackage.objects.filter(
                manifest_id__in=children, manifest__scan__status=S.SCANNED, package__findings__isnull=False
            ).values_list(
                "package_id",
                "package__findings__advisory_id",
                "package__findings__advisory__severity",
                "package__findings__fixed_by",
            )
        )
        packages = (
            ManifestPackage.objects.filter(manifest_id__in=children, manifest__scan__status=S.SCANNED)
            .values("package_id")
            .distinct()
            .count()
        )
        scans[index_id].summary = _summary_from(distinct, packages) if status == S.SCANNED else {}
    ManifestScan.objects.bulk_update(list(scans.values()), ["summary", "status", "error"], batch_size=CHUNK)
    return len(scans)


# ---------------------------------------------------------------------------------------------
# Announcements


def _alive_tags(manifest_ids: Iterable[int]) -> dict[int, list[tuple[int, str]]]:
    now = timezone.now()
    tags: dict[int, list[tuple[int, str]]] = defaultdict(list)
    ids = list(manifest_ids)
    for start in range(0, len(ids), CHUNK):
        rows = (
            Tag.objects.filter(manifest_id__in=ids[start : start + CHUNK], lifetime_end__isnull=True, hidden=False)
            .filter(Q(expiration__isnull=True) | Q(expiration__gt=now))
            .values_list("manifest_id", "repository_id", "name")
        )
        for manifest_id, repository_id, name in rows:
            tags[manifest_id].append((repository_id, name))
    return tags


def _announce(*, manifest_ids: set[int], pairs: set[tuple[int, int]] | None, only_parent: int | None = None) -> int:
    """Emit ``vulnerability_found`` for findings of these manifests that are new for a tag
    (directly, or through an index listing them): once per advisory and repository, again only
    when the advisory's severity rose. ``pairs`` limits it to those (package, advisory) pairs.
    """
    if not manifest_ids:
        return 0
    parents: dict[int, list[int]] = defaultdict(list)
    child_links = ManifestChild.objects.filter(child_id__in=list(manifest_ids))
    if only_parent is not None:
        child_links = child_links.filter(manifest_id=only_parent)
    for parent_id, child_id in child_links.values_list("manifest_id", "child_id"):
        parents[child_id].append(parent_id)
    tag_targets = set(parents_id for ids in parents.values() for parents_id in ids)
    if only_parent is None:
        tag_targets |= manifest_ids
    tags = _alive_tags(tag_targets)
    if not tags:
        return 0
    # Which tags (per repository) reach each manifest.
    reach: dict[int, set[tuple[int, str]]] = defaultdict(set)
    for manifest_id in manifest_ids:
        targets = [*parents.get(manifest_id, [])] + ([manifest_id] if only_parent is None else [])
        for target in targets:
            reach[manifest_id].update(tags.get(target, []))
    tagged = [m for m in manifest_ids if reach.get(m)]
    if not tagged:
        return 0
    per_key: dict[tuple[int, int], set[str]] = defaultdict(set)
    fixable: dict[tuple[int, int], bool] = defaultdict(bool)
    for start in range(0, len(tagged), CHUNK):
        rows = ManifestPackage.objects.filter(
            manifest_id__in=tagged[start : start + CHUNK], package__findings__isnull=False
        ).values_list("manifest_id", "package_id", "package__findings__advisory_id", "package__findings__fixed_by")
        if pairs is not None:
            package_ids = {p for p, _ in pairs}
            rows = rows.filter(package_id__in=list(package_ids)) if len(package_ids) < 5000 else rows
        for manifest_id, package_id, advisory_id, fixed_by in rows.iterator(chunk_size=5000):
            if pairs is not None and (package_id, advisory_id) not in pairs:
                continue
            for repository_id, tag in reach[manifest_id]:
                per_key[(repository_id, advisory_id)].add(tag)
                fixable[(repository_id, advisory_id)] |= bool(fixed_by)
    if not per_key:
        return 0
    advisories = {
        a.pk: a
        for a in Advisory.objects.filter(pk__in={a for _, a in per_key}).only(
            "osv_id", "summary", "details", "link", "severity"
        )
    }
    repository_ids = {r for r, _ in per_key}
    notified = {
        (n.repository_id, n.vulnerability): n
        for n in NotifiedFinding.objects.filter(
            repository_id__in=repository_ids, vulnerability__in={a.osv_id for a in advisories.values()}
        )
    }
    from registry.models import Repository

    repositories = {r.pk: r for r in Repository.objects.filter(pk__in=repository_ids).select_related("namespace")}
    emitted = 0
    new_rows: list[NotifiedFinding] = []
    raised_rows: list[NotifiedFinding] = []
    for (repository_id, advisory_id), tag_names in sorted(per_key.items()):
        advisory = advisories[advisory_id]
        previous = notified.get((repository_id, advisory.osv_id))
        if previous is not None and cvss.severity_rank(advisory.severity) <= cvss.severity_rank(previous.severity):
            continue
        event_emit(
            event="vulnerability_found",
            repository=repositories[repository_id],
            data={
                "tags": sorted(tag_names),
                "vulnerability": {
                    "id": advisory.osv_id,
                    "description": (advisory.summary or advisory.details)[:2000],
                    "link": advisory.link,
                    "priority": advisory.severity,
                    "has_fix": fixable[(repository_id, advisory_id)],
                },
            },
        )
        if previous is None:
            new_rows.append(
                NotifiedFinding(repository_id=repository_id, vulnerability=advisory.osv_id, severity=advisory.severity)
            )
        else:
            previous.severity = advisory.severity
            raised_rows.append(previous)
        emitted += 1
    # In bulk: an import that reaches thousands of repositories writes these in a few statements.
    NotifiedFinding.objects.bulk_create(new_rows, batch_size=CHUNK)
    NotifiedFinding.objects.bulk_update(raised_rows, ["severity"], batch_size=CHUNK)
    return emitted


# ---------------------------------------------------------------------------------------------
# Advisories


def advisories_import(*, path: str, source: str | None = None, record: AdvisoryImport | None = None) -> AdvisoryImport:
    """Import OSV advisories from a .json file, an OSV .zip or a directory, then re-match.

    An advisory that is not valid OSV is rejected (listed with its reason in the record), the
    others are imported; each is stored in its own transaction with the re-match of the
    packages it names, so an import stopped half-way leaves every stored advisory matched.
    """
    if record is None:
        record = AdvisoryImport.objects.create(source=source or path)
    record.state = AdvisoryImport.State.RUNNING
    record.save(update_fields=["state"])
    batch: list[osv.Advisory] = []
    try:
        for where, doc in osv.read_source(path):
            record.advisories_read += 1
            if isinstance(doc, osv.AdvisoryError):
                record.rejected.append({"source": where, "id": "", "error": str(doc)})
                continue
            try:
                batch.append(osv.parse_advisory(doc))
            except osv.AdvisoryError as exc:
                osv_id = doc.get("id", "") if isinstance(doc, dict) else ""
                record.rejected.append({"source": where, "id": str(osv_id)[:255], "error": str(exc)})
                continue
            if len(batch) >= CHUNK:
                _import_batch(batch, record)
                batch = []
        if batch:
            _import_batch(batch, record)
        record.state = AdvisoryImport.State.DONE
    except OSError as exc:
        record.state, record.error = AdvisoryImport.State.FAILED, f"cannot read {source or path}: {exc}"
    except Exception as exc:  # recorded for the admin page, then raised for the task's log
        record.state, record.error = AdvisoryImport.State.FAILED, f"{type(exc).__name__}: {exc}"
        record.finished = timezone.now()
        record.save()
        raise
    record.finished = timezone.now()
    record.save()
    return record


def _advisory_fields(adv: osv.Advisory) -> dict:
    return {
        "summary": adv.summary,
        "details": adv.details,
        "aliases": adv.aliases,
        "severity": adv.severity,
        "cvss_vector": adv.cvss_vector[:255],
        "cvss_score": adv.cvss_score,
        "link": adv.link,
        "published": adv.published,
        "modified": adv.modified,
        "withdrawn": adv.withdrawn,
    }


def _affected_rows(adv: osv.Advisory) -> list[tuple]:
    rows = []
    for affected in adv.affected:
        version_format = versions.format_for_ecosystem(affected.ecosystem)
        ranges = [
            {"type": r["type"], "events": osv.sorted_events(version_format, r["events"])} for r in affected.ranges
        ]
        rows.append((affected.ecosystem, affected.name[:255], ranges, affected.versions))
    return rows


def _canonical(rows) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def _import_batch(batch: list[osv.Advisory], record: AdvisoryImport) -> None:
    # The last copy of an id in a batch wins (an archive listing one twice).
    by_id = {adv.osv_id: adv for adv in batch}
    with transaction.atomic():
        existing = {a.osv_id: a for a in Advisory.objects.filter(osv_id__in=list(by_id)).prefetch_related("affected")}
        keys: set[tuple[str, str]] = set()
        raised: set[int] = set()
        for osv_id, adv in by_id.items():
            fields = _advisory_fields(adv)
            rows = _affected_rows(adv)
            old = existing.get(osv_id)
            if old is not None:
                old_rows = _canonical((a.ecosystem, a.name, a.ranges, a.versions) for a in old.affected.all())
                same = all(getattr(old, k) == v for k, v in fields.items()) and old_rows == _canonical(rows)
                if same:
                    record.advisories_unchanged += 1
                    continue
                keys.update((a.ecosystem, a.name) for a in old.affected.all())
                if cvss.severity_rank(adv.severity) > cvss.severity_rank(old.severity):
                    raised.add(old.pk)
                for key, value in fields.items():
                    setattr(old, key, value)
                old.save()
                old.affected.all().delete()
                advisory = old
            else:
                advisory = Advisory.objects.create(osv_id=osv_id, **fields)
            AffectedPackage.objects.bulk_create(
                [AffectedPackage(advisory=advisory, ecosystem=e, name=n, ranges=r, versions=v) for e, n, r, v in rows]
            )
            keys.update((e, n) for e, n, _, _ in rows)
            record.advisories_imported += 1
        _rematch(keys, raised, record)
        record.save()


def _rematch(keys: set[tuple[str, str]], raised: set[int], record: AdvisoryImport) -> None:
    """Re-match the installed packages named by ``keys``; refresh and announce what changed."""
    if not keys and not raised:
        return
    package_ids: list[int] = []
    names = sorted({name for _, name in keys})
    for start in range(0, len(names), CHUNK):
        for pk, ecosystem, name in Package.objects.filter(match_name__in=names[start : start + CHUNK]).values_list(
            "pk", "ecosystem", "match_name"
        ):
            if (ecosystem, name) in keys:
                package_ids.append(pk)
    added, removed, changed = _match(package_ids)
    # Advisories whose severity changed: their manifests' counts change too.
    severity_packages = set(Finding.objects.filter(advisory_id__in=raised).values_list("package_id", flat=True))
    touched = sorted(changed | severity_packages)
    manifest_ids: set[int] = set()
    for start in range(0, len(touched), CHUNK):
        manifest_ids.update(
            ManifestPackage.objects.filter(package_id__in=touched[start : start + CHUNK]).values_list(
                "manifest_id", flat=True
            )
        )
    refreshed = _summaries_refresh(manifest_ids | set(_parents(manifest_ids))) if manifest_ids else 0
    announce_pairs = added | set(
        Finding.objects.filter(advisory_id__in=raised).values_list("package_id", "advisory_id")
    )
    emitted = 0
    if announce_pairs:
        with_pairs = set()
        announce_packages = sorted({p for p, _ in announce_pairs})
        for start in range(0, len(announce_packages), CHUNK):
            with_pairs.update(
                ManifestPackage.objects.filter(package_id__in=announce_packages[start : start + CHUNK]).values_list(
                    "manifest_id", flat=True
                )
            )
        emitted = _announce(manifest_ids=with_pairs, pairs=announce_pairs)
    now = timezone.now()
    if manifest_ids:
        ManifestScan.objects.filter(manifest_id__in=manifest_ids).update(matched=now)
    record.packages_rematched += len(package_ids)
    record.findings_added += len(added)
    record.findings_removed += len(removed)
    record.manifests_refreshed += refreshed
    record.events_emitted += emitted


# Where an uploaded OSV file waits for its import: under the web machine's DATA_DIR on the embedded
# default; with S3 storage in the bucket (this prefix in ``upload_path``), since the worker that
# imports it may run on another machine (README: Distributed mode).
_BUCKET_UPLOAD = "s3:"


def advisory_upload_queue(*, uploaded, name: str) -> AdvisoryImport:
    """Keep an uploaded OSV file (admin) where a worker finds it, and queue its import."""
    directory = os.path.join(settings.DATA_DIR, "osv-uploads")
    os.makedirs(directory, exist_ok=True)
    suffix = ".zip" if name.lower().endswith(".zip") else ".json"
    path = os.path.join(directory, f"{uuid.uuid4().hex}{suffix}")
    with open(path, "wb") as f:
        for chunk in uploaded.chunks():
            f.write(chunk)
    if settings.STORAGE_BACKEND == "s3":
        key = f"osv-uploads/{os.path.basename(path)}"
        try:
            _upload_bucket().Object(key).upload_file(path)
        finally:
            os.unlink(path)
        path = _BUCKET_UPLOAD + key
    record = AdvisoryImport.objects.create(source=f"upload: {os.path.basename(name)}"[:1024], upload_path=path)
    record_id = record.pk
    transaction.on_commit(lambda: _queue_import(record_id))
    return record


def _upload_bucket():
    return get_blob_store().storage.bucket


def _queue_import(record_id: int) -> None:
    from scanning import tasks

    try:
        tasks.import_upload.delay(record_id)
    except Exception:
        log.warning("could not queue the advisory import %s", record_id, exc_info=True)


def advisory_upload_import(*, import_id: int) -> AdvisoryImport | None:
    """Run a queued upload's import (the task), then remove the uploaded file."""
    updated = AdvisoryImport.objects.filter(pk=import_id, state=AdvisoryImport.State.QUEUED).update(
        state=AdvisoryImport.State.RUNNING
    )
    if not updated:
        return None  # already taken by another run of the task
    record = AdvisoryImport.objects.get(pk=import_id)
    path, key = record.upload_path, None
    try:
        if path.startswith(_BUCKET_UPLOAD):
            # Fetched to this worker's own DATA_DIR first: the OSV reader takes a local file.
            key = path[len(_BUCKET_UPLOAD) :]
            path = os.path.join(settings.DATA_DIR, "osv-uploads", os.path.basename(key))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                _upload_bucket().Object(key).download_file(path)
            except Exception as exc:  # recorded for the admin page, like an unreadable file
                record.state, record.error = AdvisoryImport.State.FAILED, f"cannot read {key} from the bucket: {exc}"
                record.finished = timezone.now()
                record.save()
                return record
        return advisories_import(path=path, source=record.source, record=record)
    finally:
        if path and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif path and os.path.exists(path):
            os.unlink(path)
        if key is not None:
            _upload_bucket().Object(key).delete()
