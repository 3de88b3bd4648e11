"""Documentation serializers of the security API (drf-spectacular reads them; the view builds
plain dicts, tested against this schema)."""

from rest_framework import serializers


class SecurityVulnerabilityDoc(serializers.Serializer):
    Name = serializers.CharField(help_text="The advisory id (CVE-..., DSA-..., GHSA-...)")
    NamespaceName = serializers.CharField(help_text="The advisory's ecosystem (Debian:12, PyPI, ...)")
    Description = serializers.CharField()
    Link = serializers.CharField()
    Severity = serializers.CharField(help_text="Critical, High, Medium, Low, Negligible or Unknown")
    FixedBy = serializers.CharField(help_text="The first version that fixes it; empty when none is known")
    Metadata = serializers.DictField(help_text="UpdatedBy, RepoName, RepoLink, DistroName, DistroVersion, Aliases, NVD")


class SecurityFeatureDoc(serializers.Serializer):
    Name = serializers.CharField()
    VersionFormat = serializers.CharField(help_text="dpkg, apk, rpm, pep440 or semver")
    NamespaceName = serializers.CharField()
    AddedBy = serializers.CharField(help_text="Digest of the layer that installed this version")
    Version = serializers.CharField()
    Vulnerabilities = SecurityVulnerabilityDoc(many=True)


class SecurityLayerDoc(serializers.Serializer):
    Name = serializers.CharField()
    ParentName = serializers.CharField()
    NamespaceName = serializers.CharField()
    IndexedByVersion = serializers.IntegerField()
    Features = SecurityFeatureDoc(many=True)


class SecurityDataDoc(serializers.Serializer):
    Layer = SecurityLayerDoc()


class SecurityDoc(serializers.Serializer):
    status = serializers.ChoiceField(choices=["queued", "scanned", "failed", "unsupported"])
    data = SecurityDataDoc(allow_null=True)
