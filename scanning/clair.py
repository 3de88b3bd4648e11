"""Clair v4 as the scanner (optional): with ``CLAIR_URL`` set, a pushed image is indexed and
matched by Clair instead of the built-in indexer, and Clair's answer is stored in the same rows
(``ManifestScan``, ``ManifestPackage``, ``Package``, ``Advisory``, ``Finding``), so the security
API, the Tags tab, the security page and ``vulnerability_found`` work unchanged.

The exchange (Clair v4's HTTP API):

1. ``POST {CLAIR_URL}/indexer/api/v1/index_report`` with the manifest: its digest and, per
   layer, a URI Clair's indexer fetches the blob from and the headers to send. The URI is this
   registry's own ``/v2/<repository>/blobs/<digest>`` under ``CLAIR_REGISTRY_URL`` (the address
   Clair reaches the registry at), with a pull token for that one repository, signed like the
   token endpoint's and living ``max(CLAIR_TIMEOUT_SECONDS, REGISTRY_TOKEN_SECONDS)``: Clair
   needs no account, and the token is good for nothing else. Clair answers with its index report
   (``state`` ``IndexFinished`` or ``IndexError`` with ``err``).
2. ``GET {CLAIR_URL}/matcher/api/v1/vulnerability_report/<manifest digest>``: the packages,
   distributions, repositories, ``environments`` (per package: its database path and the layer
   that introduced it), ``vulnerabilities`` (``normalized_severity``, ``fixed_in_version``,
   ``links``) and ``package_vulnerabilities`` (package id -> vulnerability ids).

With ``CLAIR_PSK`` (Clair's ``auth.psk.key``, base64) each request carries an HS256 JWT issued by
``quay``, as Quay sends. Every request goes through ``quay_site/outbound.py``; Clair on a private
address must be allowed with ``OUTBOUND_ALLOWED_NETWORKS``.

Clair's packages are stored with a ``match_name`` prefixed ``clair:`` and its vulnerabilities as
advisories without ``affected`` rows, so an OSV import (the built-in matcher) never re-matches
or removes them. A vulnerability name found twice for one package (two updaters) counts once.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from quay_site import outbound
from registry.manifests import FOREIGN_LAYER_TYPES, parse_manifest
from registry.models import Manifest
from registry.tokens import signing_key
from scanning import cvss
from scanning.models import SCANNER_VERSION, Advisory, Finding, ManifestPackage, ManifestScan, PackageKind

INDEX_PATH = "/indexer/api/v1/index_report"
REPORT_PATH = "/matcher/api/v1/vulnerability_report/"
MATCH_PREFIX = "clair:"
# Clair's normalized severities are Quay's levels; Quay's Defcon1 is above Critical, which we
# do not have.
SEVERITIES = {name.lower(): name for name in cvss.SEVERITIES} | {"defcon1": "Critical"}
DISTRO_KINDS = {
    "debian": PackageKind.DPKG,
    "ubuntu": PackageKind.DPKG,
    "alpine": PackageKind.APK,
}


class ClairError(Exception):
    """Clair could not be asked, or answered something unusable: the scan fails with this."""


def clair_enabled() -> bool:
    return bool(getattr(settings, "CLAIR_URL", ""))


# ---------------------------------------------------------------------------------------------
# Requests


def _psk_token() -> str | None:
    psk = getattr(settings, "CLAIR_PSK", "")
    if not psk:
        return None
    try:
        key = base64.b64decode(psk, validate=True)
    except (binascii.Error, ValueError):
        raise ClairError("CLAIR_PSK is not valid base64") from None
    now = int(time.time())
    return jwt.encode({"iss": "quay", "iat": now, "nbf": now - 5, "exp": now + 300}, key, algorithm="HS256")


def _call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    url = settings.CLAIR_URL + path
    headers = {"Accept": "application/json"}
    token = _psk_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    try:
        response = outbound.request(
            method,
            url,
            headers=headers,
            body=data,
            timeout=settings.CLAIR_TIMEOUT_SECONDS,
            max_response_bytes=settings.CLAIR_MAX_RESPONSE_BYTES,
        )
    except outbound.DestinationRefused as exc:
        raise ClairError(
            f"Clair at {settings.CLAIR_URL} may not be reached: {exc} (see OUTBOUND_ALLOWED_NETWORKS)"
        ) from None
    except outbound.OutboundError as exc:
        raise ClairError(f"Clair at {settings.CLAIR_URL} is unreachable: {exc}") from None
    if response.truncated:
        raise ClairError(f"Clair's answer to {method} {path} is over CLAIR_MAX_RESPONSE_BYTES")
    try:
        doc = json.loads(response.body) if response.body else {}
    except ValueError:
        doc = None
    if not response.ok:
        detail = doc.get("message") or doc.get("code") if isinstance(doc, dict) else None
        raise ClairError(
            f"Clair answered {method} {path} with HTTP {response.status}: {detail or response.text_excerpt(200)}"
        )
    if not isinstance(doc, dict):
        raise ClairError(f"Clair's answer to {method} {path} is not a JSON object")
    return response.status, doc


def registry_url() -> str:
    base = getattr(settings, "CLAIR_REGISTRY_URL", "")
    if base:
        return base
    if settings.SERVER_HOSTNAME:
        return f"{settings.PREFERRED_URL_SCHEME or 'https'}://{settings.SERVER_HOSTNAME}"
    raise ClairError("set CLAIR_REGISTRY_URL (or SERVER_HOSTNAME): Clair fetches the layers from the registry")


def layer_pull_token(repository_name: str, audience: str) -> str:
    """A registry token that pulls from ``repository_name`` only (what Clair's indexer sends)."""
    now = int(time.time())
    key = signing_key()
    claims = {
        "iss": settings.REGISTRY_TOKEN_ISSUER,
        "sub": "$clair",
        "aud": audience,
        "exp": now + int(max(settings.CLAIR_TIMEOUT_SECONDS, settings.REGISTRY_TOKEN_SECONDS)),
        "nbf": now - 5,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [{"type": "repository", "name": repository_name, "actions": ["pull"]}],
        "context": {"kind": "scanner"},
    }
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def index_request(manifest: Manifest) -> dict:
    """Clair's ``Manifest``: the digest, and each layer with a URI and headers to fetch it."""
    base = registry_url()
    # The token's audience is the registry's service name: SERVER_HOSTNAME, else the Host Clair sends.
    audience = settings.SERVER_HOSTNAME or urlsplit(base).netloc
    repository = manifest.repository.full_name
    token = layer_pull_token(repository, audience)
    parsed = parse_manifest(bytes(manifest.raw), manifest.media_type)
    return {
        "hash": manifest.digest,
        "layers": [
            {
                "hash": layer.digest,
                "uri": f"{base}/v2/{repository}/blobs/{layer.digest}",
                "headers": {"Authorization": [f"Bearer {token}"]},
            }
            for layer in parsed.layers
            if layer.media_type not in FOREIGN_LAYER_TYPES
        ],
    }


# ---------------------------------------------------------------------------------------------
# The scan


def manifest_scan(*, manifest: Manifest, scan: ManifestScan) -> ManifestScan:
    """Have Clair index and match ``manifest``; store its report, or fail the scan with why."""
    from scanning import services  # services calls this module

    try:
        _, index = _call("POST", INDEX_PATH, index_request(manifest))
        if index.get("state") == "IndexError" or index.get("success") is False:
            raise ClairError(f"Clair could not index the image: {index.get('err') or index.get('state')}")
        _, report = _call("GET", REPORT_PATH + manifest.digest)
        return _store(manifest, scan, report)
    except ClairError as exc:
        return services._scan_finish(scan, ManifestScan.Status.FAILED, str(exc))


def _fixed_version(value) -> str:
    """``fixed_in_version`` is a version, or (vulnerabilities from OSV data) a query string
    such as ``fixed=2.31.0&introduced=2.0``."""
    value = str(value or "").strip()
    if "=" in value:
        return (parse_qs(value).get("fixed") or [""])[0]
    return value


def _kind(package: dict, environment: dict, distribution: dict | None, repositories: list[dict]) -> str:
    db = (environment.get("package_db") or "").lower()
    names = {str(r.get("name", "")).lower() for r in repositories}
    if db.startswith("python:") or "site-packages" in db or "dist-packages" in db or "pypi" in names:
        return PackageKind.PYTHON
    if "node_modules" in db or db.startswith("nodejs:") or "npm" in names:
        return PackageKind.NPM
    if "dpkg" in db:
        return PackageKind.DPKG
    if "apk" in db:
        return PackageKind.APK
    if "rpm" in db:
        return PackageKind.RPM
    did = str((distribution or {}).get("did", "")).lower()
    return DISTRO_KINDS.get(did, PackageKind.RPM if did else PackageKind.DPKG)


def _ecosystem(kind: str, distribution: dict | None) -> str:
    from scanning import services

    if kind == PackageKind.PYTHON:
        return "PyPI"
    if kind == PackageKind.NPM:
        return "npm"
    if distribution:
        return services.distro_ecosystem(
            {"ID": distribution.get("did", ""), "VERSION_ID": distribution.get("version_id", "")}
        )
    return ""


def _packages(report: dict) -> dict[str, tuple[tuple, str, str]]:
    """Clair package id -> (our Package identity, layer that added it, database path)."""
    distributions = report.get("distributions") or {}
    repositories = report.get("repository") or {}
    found = {}
    for package_id, package in (report.get("packages") or {}).items():
        if not isinstance(package, dict) or not package.get("name"):
            continue
        environment = ((report.get("environments") or {}).get(package_id) or [{}])[0] or {}
        distribution = distributions.get(str(environment.get("distribution_id") or ""))
        repos = [repositories[r] for r in environment.get("repository_ids") or [] if r in repositories]
        kind = _kind(package, environment, distribution, repos)
        source = package.get("source") or {}
        name, version = str(package["name"])[:255], str(package.get("version") or "")[:255]
        identity = (
            _ecosystem(kind, distribution)[:100],
            kind,
            name,
            version,
            (MATCH_PREFIX + str(source.get("name") or name))[:255],
            str(source.get("version") or version)[:255],
        )
        found[package_id] = (
            identity,
            str(environment.get("introduced_in") or "")[:200],
            str(environment.get("package_db") or "")[:1024],
        )
    return found


def _advisories(vulnerabilities: dict, used: set[str]) -> dict[str, int]:
    """Clair vulnerability id -> Advisory id: created by name, refreshed if Clair made it."""
    wanted: dict[str, dict] = {}
    for vuln_id in used:
        v = vulnerabilities[vuln_id]
        name = str(v.get("name") or vuln_id)[:255]
        severity = SEVERITIES.get(str(v.get("normalized_severity") or "").lower(), "Unknown")
        links = str(v.get("links") or "").split()
        fields = {
            "summary": "",
            "details": str(v.get("description") or ""),
            "severity": severity,
            "link": links[0][:1024] if links else "",
        }
        previous = wanted.get(name)
        if previous is None or cvss.severity_rank(severity) > cvss.severity_rank(previous["severity"]):
            wanted[name] = fields
    existing = {
        a.osv_id: a for a in Advisory.objects.filter(osv_id__in=list(wanted)).annotate(n_affected=Count("affected"))
    }
    for name, fields in wanted.items():
        advisory = existing.get(name)
        if advisory is None:
            existing[name] = Advisory.objects.create(osv_id=name, **fields)
        elif advisory.n_affected == 0 and any(getattr(advisory, k) != v for k, v in fields.items()):
            # Clair's own advisory: it follows Clair. One imported from OSV keeps its data.
            for key, value in fields.items():
                setattr(advisory, key, value)
            advisory.save(update_fields=[*fields, "imported"])
    return {vuln_id: existing[str(vulnerabilities[vuln_id].get("name") or vuln_id)[:255]].pk for vuln_id in used}


def _store(manifest: Manifest, scan: ManifestScan, report: dict) -> ManifestScan:
    from scanning import services

    vulnerabilities = report.get("vulnerabilities") or {}
    by_package = report.get("package_vulnerabilities") or {}
    if not isinstance(vulnerabilities, dict) or not isinstance(by_package, dict):
        raise ClairError("Clair's vulnerability report has no vulnerabilities map")
    packages = _packages(report)
    first: dict[tuple, tuple[str, str]] = {}
    for identity, added_by, path in packages.values():
        first.setdefault(identity, (added_by, path))
    used = {v for pid in packages for v in by_package.get(pid) or [] if v in vulnerabilities}
    distribution = next(iter((report.get("distributions") or {}).values()), None) or {}
    with transaction.atomic():
        ids, _new = services._packages_upsert(set(first))
        ManifestPackage.objects.filter(manifest=manifest).delete()
        ManifestPackage.objects.bulk_create(
            [
                ManifestPackage(manifest=manifest, package_id=ids[key], added_by=added_by, path=path)
                for key, (added_by, path) in first.items()
            ],
            batch_size=services.CHUNK,
        )
        advisory_ids = _advisories(vulnerabilities, used)
        wanted: dict[tuple[int, int], str] = {}
        for package_id, (identity, _, _) in packages.items():
            for vuln_id in by_package.get(package_id) or []:
                if vuln_id not in vulnerabilities:
                    continue
                pair = (ids[identity], advisory_ids[vuln_id])
                fixed = _fixed_version(vulnerabilities[vuln_id].get("fixed_in_version"))[:255]
                wanted[pair] = wanted.get(pair) or fixed
        changed = _findings_set(sorted(set(ids.values())), wanted)
        scan = ManifestScan.objects.select_for_update().get(pk=scan.pk)
        scan.status, scan.error = ManifestScan.Status.SCANNED, ""
        scan.os_id = str(distribution.get("did") or "")[:64]
        scan.os_version = str(distribution.get("version_id") or "")[:64]
        scan.os_name = str(distribution.get("pretty_name") or distribution.get("name") or "")[:255]
        scan.ecosystem = _ecosystem(PackageKind.DPKG, distribution)[:100] if distribution else ""
        scan.scanner_version = SCANNER_VERSION
        scan.indexed = scan.matched = timezone.now()
        scan.save()
        # Other manifests sharing a package whose findings changed get fresh counts too.
        holders = set(ManifestPackage.objects.filter(package_id__in=changed).values_list("manifest_id", flat=True))
        holders.add(manifest.pk)
        services._summaries_refresh(holders | set(services._parents(holders)))
        services._announce(manifest_ids={manifest.pk}, pairs=None)
    scan.refresh_from_db()
    return scan


def _findings_set(package_ids: list[int], wanted: dict[tuple[int, int], str]) -> set[int]:
    """Make the Clair packages' findings exactly ``wanted``; return the packages that changed."""
    current = {
        (p, a): (pk, fixed)
        for pk, p, a, fixed in Finding.objects.filter(package_id__in=package_ids).values_list(
            "pk", "package_id", "advisory_id", "fixed_by"
        )
    }
    gone = [pk for pair, (pk, _) in current.items() if pair not in wanted]
    if gone:
        Finding.objects.filter(pk__in=gone).delete()
    Finding.objects.bulk_create(
        [
            Finding(package_id=p, advisory_id=a, fixed_by=fixed)
            for (p, a), fixed in wanted.items()
            if (p, a) not in current
        ],
        ignore_conflicts=True,
    )
    updated = [
        Finding(pk=current[pair][0], fixed_by=fixed)
        for pair, fixed in wanted.items()
        if pair in current and current[pair][1] != fixed
    ]
    if updated:
        Finding.objects.bulk_update(updated, ["fixed_by"])
    changed = {p for p, _ in set(current) ^ set(wanted)}
    return changed | {pair[0] for pair, fixed in wanted.items() if pair in current and current[pair][1] != fixed}
