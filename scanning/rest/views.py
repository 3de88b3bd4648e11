"""Quay's security API: ``GET /api/v1/repository/<r>/manifest/<digest>/security``.

The answer has Quay's shape (Clair's v2 "Layer with Features" model, which Quay keeps for its v4
scanner too): ``status`` (queued, scanned, failed, unsupported) and, once scanned, ``data``
with one feature per installed package and its vulnerabilities.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts import scopes
from quay_site.rest.errors import NotFound
from quay_site.rest.views import ApiView
from registry import selectors as registry_selectors
from registry.models import Role
from registry.rest.access import TRUE_VALUES, ScopeOrAnonymousPermission, repository_for
from registry.rest.manifests import MANIFEST_PARAM
from registry.rest.tags import repository_param
from scanning import selectors
from scanning.models import SCANNER_VERSION, ManifestScan
from scanning.rest import serializers as s


class ManifestSecurityView(ApiView):
    """``GET /repository/<r>/manifest/<digest>/security``."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "getRepoManifestSecurity"}

    @extend_schema(
        parameters=[
            repository_param(),
            MANIFEST_PARAM,
            OpenApiParameter(
                "vulnerabilities",
                OpenApiTypes.BOOL,
                description="Include each package's vulnerabilities (otherwise the lists are empty)",
            ),
        ],
        responses={200: s.SecurityDoc},
    )
    def get(self, request, repository, manifestref):
        """The scan status of a manifest and, once scanned, its packages and their vulnerabilities."""
        repo, _ = repository_for(request, repository, need=Role.READ)
        manifest = registry_selectors.manifest_in_repository(repository=repo, digest=manifestref)
        if manifest is None:
            raise NotFound()
        if manifest.is_index:
            # As Quay: a manifest list is not indexed itself; each of its manifests is.
            return Response({"status": ManifestScan.Status.UNSUPPORTED, "data": None})
        scan = selectors.manifest_scan(manifest=manifest)
        if scan is None or scan.status != ManifestScan.Status.SCANNED:
            return Response({"status": scan.status if scan else ManifestScan.Status.QUEUED, "data": None})
        with_vulnerabilities = (request.query_params.get("vulnerabilities") or "").lower() in TRUE_VALUES
        packages = selectors.manifest_vulnerabilities(manifest=manifest, include_clean=True)
        features = [
            {
                "Name": p.name,
                "VersionFormat": p.version_format,
                "NamespaceName": p.ecosystem,
                "AddedBy": p.added_by,
                "Version": p.version,
                "Vulnerabilities": [_vulnerability(v, scan) for v in p.vulnerabilities] if with_vulnerabilities else [],
            }
            for p in sorted(packages, key=lambda p: (p.name, p.version))
        ]
        return Response(
            {
                "status": ManifestScan.Status.SCANNED,
                "data": {
                    "Layer": {
                        "Name": manifest.digest,
                        "ParentName": "",
                        "NamespaceName": scan.ecosystem,
                        "IndexedByVersion": scan.scanner_version or SCANNER_VERSION,
                        "Features": features,
                    }
                },
            }
        )


def _vulnerability(v: selectors.Vulnerability, scan: ManifestScan) -> dict:
    metadata = {
        "UpdatedBy": "",
        "RepoName": None,
        "RepoLink": None,
        "DistroName": scan.os_name or None,
        "DistroVersion": scan.os_version or None,
        "Aliases": v.aliases,
    }
    if v.cvss_vector:
        metadata["NVD"] = {"CVSSv3": {"Vectors": v.cvss_vector, "Score": v.cvss_score}}
    return {
        "Name": v.id,
        "NamespaceName": v.ecosystem,
        "Description": v.description or v.summary,
        "Link": v.link,
        "Severity": v.severity,
        "FixedBy": v.fixed_by,
        "Metadata": metadata,
    }
