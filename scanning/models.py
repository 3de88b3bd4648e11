"""Security scanning: what each layer holds, what each manifest is made of, and what is known
to be vulnerable.

The work is split so that nothing is done twice:

- a layer (by blob digest) is read once: ``LayerIndex`` + ``LayerPackage`` rows record the
  package databases, OS release files and whiteouts it carries;
- a manifest's contents are composed from its layers' rows (whiteouts applied, the top layer
  winning) into ``ManifestPackage`` rows pointing at shared ``Package`` rows;
- advisories are matched per distinct ``Package`` (``Finding``), not per manifest, so an import
  re-matches the versions installed anywhere once and then only refreshes the cached
  ``ManifestScan.summary`` of the manifests holding a changed package.
"""

from __future__ import annotations

from django.db import models

from registry.models import Manifest, Repository

# Bumped when the indexer learns to find more; IndexedByVersion in Quay's API.
SCANNER_VERSION = 1


class LayerIndex(models.Model):
    """What one layer blob holds, read once whatever the number of manifests sharing it.

    ``package_files`` lists every package database found (even an empty one: it still hides
    the lower layers' copy of that file); ``whiteouts`` and ``opaque_dirs`` are the deletions
    this layer makes in the layers below it; ``os_release`` maps an os-release path to its fields.
    Keyed by digest, not by a foreign key to Blob: garbage collection deletes blob rows with
    plain SQL, and an index entry of a collected blob is harmless (the same bytes read again
    would give the same rows).
    """

    class State(models.TextChoices):
        INDEXED = "indexed"
        FAILED = "failed"

    digest = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=16, choices=State.choices)
    error = models.TextField(blank=True)
    os_release = models.JSONField(default=dict, blank=True)
    package_files = models.JSONField(default=list, blank=True)
    whiteouts = models.JSONField(default=list, blank=True)
    opaque_dirs = models.JSONField(default=list, blank=True)
    scanner_version = models.PositiveIntegerField(default=SCANNER_VERSION)
    indexed = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.digest


class PackageKind(models.TextChoices):
    DPKG = "dpkg"
    APK = "apk"
    RPM = "rpm"
    PYTHON = "python"
    NPM = "npm"


class LayerPackage(models.Model):
    """A package recorded in one layer's copy of a package database (``path``)."""

    layer = models.ForeignKey(LayerIndex, on_delete=models.CASCADE, related_name="packages")
    path = models.CharField(max_length=1024)
    kind = models.CharField(max_length=16, choices=PackageKind.choices)
    name = models.CharField(max_length=255)
    version = models.CharField(max_length=255)
    # The distribution source package (dpkg Source:, apk origin, rpm source rpm) advisories name.
    source_name = models.CharField(max_length=255, blank=True)
    source_version = models.CharField(max_length=255, blank=True)
    arch = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class Package(models.Model):
    """One installed package version in one ecosystem, shared by every manifest that has it.

    ``match_name``/``match_version`` are what advisories are looked up by: the source package
    for distributions (Debian and Alpine advisories name source packages), the normalized
    name for PyPI (PEP 503), the name itself for npm.
    """

    ecosystem = models.CharField(max_length=100)
    version_format = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=PackageKind.choices)
    name = models.CharField(max_length=255)
    version = models.CharField(max_length=255)
    match_name = models.CharField(max_length=255)
    match_version = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ecosystem", "kind", "name", "version", "match_name", "match_version"],
                name="scanning_package_unique",
            )
        ]
        # The re-match after an import looks packages up by what advisories name.
        indexes = [models.Index(fields=["ecosystem", "match_name"], name="scanning_package_match_idx")]

    def __str__(self) -> str:
        return f"{self.ecosystem} {self.name} {self.version}"


class ManifestScan(models.Model):
    """The scan of one manifest: status (Quay's names), the OS found, and cached counts.

    ``summary`` is recomputed whenever the manifest's findings may have changed (its own index,
    an advisory import), so the Tags tab reads counts for a page of tags in one query:
    ``{"packages", "affected_packages", "vulnerabilities", "fixable", "highest",
    "by_severity": {name: n}, "fixable_by_severity": {name: n}}``.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        SCANNED = "scanned"
        FAILED = "failed"
        UNSUPPORTED = "unsupported"

    manifest = models.OneToOneField(Manifest, on_delete=models.CASCADE, related_name="scan")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    os_id = models.CharField(max_length=64, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    os_name = models.CharField(max_length=255, blank=True)
    # The distribution's advisory ecosystem (``Debian:12``), "" when there is no known OS.
    ecosystem = models.CharField(max_length=100, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    scanner_version = models.PositiveIntegerField(default=SCANNER_VERSION)
    queued = models.DateTimeField(auto_now_add=True)
    indexed = models.DateTimeField(null=True, blank=True)
    matched = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweeper looks for scans left queued (a lost task): a small partial index.
            models.Index(fields=["queued"], name="scanning_scan_queued_idx", condition=models.Q(status="queued")),
        ]

    def __str__(self) -> str:
        return f"{self.manifest_id}: {self.status}"


class ManifestPackage(models.Model):
    """A package present in a manifest's composed filesystem, with the layer that added it."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="scan_packages")
    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="manifests")
    added_by = models.CharField(max_length=200)
    path = models.CharField(max_length=1024)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "package"], name="scanning_manifest_package_unique")]
        indexes = [models.Index(fields=["package"], name="scanning_mp_package_idx")]


class Advisory(models.Model):
    """One OSV advisory as imported; ``severity`` is Quay's name, from CVSS v3 or the source."""

    osv_id = models.CharField(max_length=255, unique=True)
    summary = models.TextField(blank=True)
    details = models.TextField(blank=True)
    aliases = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=16, default="Unknown")
    cvss_vector = models.CharField(max_length=255, blank=True)
    cvss_score = models.FloatField(null=True, blank=True)
    link = models.URLField(max_length=1024, blank=True)
    published = models.DateTimeField(null=True, blank=True)
    modified = models.DateTimeField(null=True, blank=True)
    withdrawn = models.DateTimeField(null=True, blank=True)
    imported = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "advisories"

    def __str__(self) -> str:
        return self.osv_id


class AffectedPackage(models.Model):
    """An ``affected[]`` entry of an advisory: which package, which versions (OSV ranges)."""

    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="affected")
    ecosystem = models.CharField(max_length=100)
    name = models.CharField(max_length=255)
    # [{"type": "ECOSYSTEM"|"SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2"}]}]
    ranges = models.JSONField(default=list, blank=True)
    versions = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["ecosystem", "name"], name="scanning_affected_idx")]


class Finding(models.Model):
    """A package version an advisory affects, with the first version that fixes it ("" = none)."""

    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="findings")
    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="findings")
    fixed_by = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["package", "advisory"], name="scanning_finding_unique")]
        indexes = [models.Index(fields=["advisory"], name="scanning_finding_advisory_idx")]


class NotifiedFinding(models.Model):
    """A ``vulnerability_found`` already announced for a repository (never announced again,
    unless its severity rose). Keyed by the advisory id, so a re-import keeps it."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    vulnerability = models.CharField(max_length=255)
    severity = models.CharField(max_length=16)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "vulnerability"], name="scanning_notified_unique")]


class AdvisoryImport(models.Model):
    """One import of OSV data (command or admin upload): counts, and each rejected advisory."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    source = models.CharField(max_length=1024)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # An uploaded file waiting for the task (removed once imported).
    upload_path = models.CharField(max_length=1024, blank=True)
    advisories_read = models.PositiveIntegerField(default=0)
    advisories_imported = models.PositiveIntegerField(default=0)
    advisories_unchanged = models.PositiveIntegerField(default=0)
    # [{"source": "file or member", "id": "...", "error": "..."}]
    rejected = models.JSONField(default=list, blank=True)
    packages_rematched = models.PositiveIntegerField(default=0)
    findings_added = models.PositiveIntegerField(default=0)
    findings_removed = models.PositiveIntegerField(default=0)
    manifests_refreshed = models.PositiveIntegerField(default=0)
    events_emitted = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.source} ({self.state})"
