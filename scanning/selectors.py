"""Reads of scan results, for the API and the UI (Tags tab column, security page).

The Tags tab calls ``manifest_summaries`` once for the page's manifests (one query: the
counts are cached on ManifestScan). The security page calls ``manifest_vulnerabilities``
(one query for the findings; indexes are read through their children).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from registry.models import Manifest, ManifestChild
from scanning.cvss import severity_rank
from scanning.models import AdvisoryImport, ManifestPackage, ManifestScan

# Quay's levels, most severe first (what the pages list and filter by).
SEVERITY_ORDER = ["Critical", "High", "Medium", "Low", "Negligible", "Unknown"]


@dataclass(frozen=True)
class SecuritySummary:
    """What the Tags tab shows for one manifest.

    ``status`` is Quay's (queued, scanned, failed, unsupported); the counts are those of the
    (package, vulnerability) findings, and are zero unless the status is scanned.
    """

    status: str
    packages: int = 0
    affected_packages: int = 0
    vulnerabilities: int = 0
    fixable: int = 0
    highest: str | None = None
    highest_count: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)  # every level, most severe first
    fixable_by_severity: dict[str, int] = field(default_factory=dict)
    error: str = ""


def _summary(status: str, summary: dict, error: str = "") -> SecuritySummary:
    by = summary.get("by_severity") or {}
    fixable_by = summary.get("fixable_by_severity") or {}
    highest = summary.get("highest")
    return SecuritySummary(
        status=status,
        packages=summary.get("packages", 0),
        affected_packages=summary.get("affected_packages", 0),
        vulnerabilities=summary.get("vulnerabilities", 0),
        fixable=summary.get("fixable", 0),
        highest=highest,
        highest_count=by.get(highest, 0) if highest else 0,
        by_severity={name: by.get(name, 0) for name in SEVERITY_ORDER},
        fixable_by_severity={name: fixable_by.get(name, 0) for name in SEVERITY_ORDER},
        error=error,
    )


QUEUED = _summary(ManifestScan.Status.QUEUED, {})


def manifest_summaries(*, manifest_ids: Iterable[int]) -> dict[int, SecuritySummary]:
    """Counts per manifest id for a page of tags, in one query. A manifest with no scan row
    (pushed before scanning existed, or scanning off) reads as queued."""
    ids = list(set(manifest_ids))
    found = {
        manifest_id: _summary(status, summary or {}, error)
        for manifest_id, status, summary, error in ManifestScan.objects.filter(manifest_id__in=ids).values_list(
            "manifest_id", "status", "summary", "error"
        )
    }
    return {manifest_id: found.get(manifest_id, QUEUED) for manifest_id in ids}


def tag_summaries(*, tags: Iterable) -> dict[int, SecuritySummary]:
    """The same, keyed by tag id, for Tag rows (their ``manifest_id`` is used, no join)."""
    tags = list(tags)
    by_manifest = manifest_summaries(manifest_ids=[tag.manifest_id for tag in tags])
    return {tag.pk: by_manifest[tag.manifest_id] for tag in tags}


def manifest_scan(*, manifest: Manifest) -> ManifestScan | None:
    return ManifestScan.objects.filter(manifest=manifest).first()


@dataclass(frozen=True)
class Vulnerability:
    id: str
    severity: str
    summary: str
    description: str
    link: str
    fixed_by: str  # "" when no fixed version is known
    cvss_vector: str
    cvss_score: float | None
    aliases: list[str]
    ecosystem: str


@dataclass
class PackageFindings:
    """One installed package of a manifest and what affects it (most severe first)."""

    name: str
    version: str
    kind: str
    version_format: str
    ecosystem: str
    added_by: str
    path: str
    vulnerabilities: list[Vulnerability] = field(default_factory=list)

    @property
    def highest(self) -> str | None:
        return self.vulnerabilities[0].severity if self.vulnerabilities else None

    @property
    def fixable(self) -> int:
        return sum(1 for v in self.vulnerabilities if v.fixed_by)


def _scanned_manifest_ids(manifest: Manifest) -> list[int]:
    if manifest.is_index:
        return list(
            ManifestChild.objects.filter(
                manifest=manifest, child__scan__status=ManifestScan.Status.SCANNED
            ).values_list("child_id", flat=True)
        )
    return [manifest.pk]


def manifest_vulnerabilities(
    *,
    manifest: Manifest,
    severities: Iterable[str] | None = None,
    fixable: bool | None = None,
    include_clean: bool = False,
) -> list[PackageFindings]:
    """The manifest's packages with their vulnerabilities, grouped by package.

    ``severities`` keeps only vulnerabilities of those levels; ``fixable`` True keeps only those
    with a fixed version, False only those without. Packages left with no vulnerability are
    dropped unless ``include_clean`` (the API's full feature list). For an index: its scanned
    children together, each package once. Sorted by the most severe vulnerability, then name.
    """
    wanted = set(severities) if severities is not None else None
    ids = _scanned_manifest_ids(manifest)
    rows = (
        ManifestPackage.objects.filter(manifest_id__in=ids)
        .select_related("package")
        .order_by("package__name", "package__version", "pk")
    )
    packages: dict[int, PackageFindings] = {}
    for mp in rows:
        if mp.package_id not in packages:
            p = mp.package
            packages[mp.package_id] = PackageFindings(
                name=p.name,
                version=p.version,
                kind=p.kind,
                version_format=p.version_format,
                ecosystem=p.ecosystem,
                added_by=mp.added_by,
                path=mp.path,
            )
    findings = (
        ManifestPackage.objects.filter(manifest_id__in=ids, package__findings__isnull=False)
        .values_list(
            "package_id",
            "package__findings__fixed_by",
            "package__findings__advisory__osv_id",
            "package__findings__advisory__severity",
            "package__findings__advisory__summary",
            "package__findings__advisory__details",
            "package__findings__advisory__link",
            "package__findings__advisory__cvss_vector",
            "package__findings__advisory__cvss_score",
            "package__findings__advisory__aliases",
            "package__ecosystem",
        )
        .distinct()
    )
    seen = set()
    for package_id, fixed_by, osv_id, severity, summary, details, link, vector, score, aliases, eco in findings:
        if (package_id, osv_id) in seen:
            continue
        seen.add((package_id, osv_id))
        if wanted is not None and severity not in wanted:
            continue
        if fixable is not None and bool(fixed_by) != fixable:
            continue
        packages[package_id].vulnerabilities.append(
            Vulnerability(osv_id, severity, summary, details, link, fixed_by, vector, score, aliases or [], eco)
        )
    result = []
    for package in packages.values():
        package.vulnerabilities.sort(key=lambda v: (-severity_rank(v.severity), v.id))
        if package.vulnerabilities or include_clean:
            result.append(package)
    result.sort(key=lambda p: (-severity_rank(p.highest) if p.highest else 1, p.name, p.version))
    return result


def advisory_imports_recent(*, limit: int = 20) -> list[AdvisoryImport]:
    return list(AdvisoryImport.objects.order_by("-started")[:limit])
