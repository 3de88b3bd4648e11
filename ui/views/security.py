"""The security page of an image: what the scanner found in a manifest, and how to remedy it.

Quay's address: ``/repository/<ns>/<name>/manifest/<digest>`` (its manifest page, whose
vulnerabilities view this is; ``?tab=vulnerabilities`` is accepted and changes nothing). The
Tags tab's Security column links here with ``&tag=<name>``, which only names the tag in the
title. Filters are GET parameters, so a filtered view is a link and works without script:
``severity=<level>`` (repeatable) and ``fixable=1`` (only what a fixed version exists for).

Read permission as the Tags tab: strangers get a 404, anonymous visitors of a private
repository the sign-in page. Everything is read through ``scanning.selectors``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404
from django.shortcuts import render

from registry import names
from registry import selectors as registry_selectors
from registry.errors import RegistryError
from registry.manifests import parse_manifest
from registry.models import Manifest, Role
from scanning import selectors as scanning_selectors
from scanning.models import ManifestScan
from scanning.services import scanning_enabled
from ui.access import repository_access
from ui.views.base import UiView, error_page

DISABLED_MESSAGE = "Security scanning is not enabled on this registry."
TRUE_VALUES = ("1", "true", "on", "yes")


@dataclass(frozen=True)
class SeverityChoice:
    """A severity checkbox of the filter: the level, its count in the whole scan, and whether
    the current view keeps it."""

    level: str
    count: int
    fixable: int
    checked: bool


def _layer_numbers(manifest: Manifest) -> dict[str, int]:
    """Layer digest -> its position (1 = the base), to say which layer added a package."""
    if manifest.is_index:
        return {}
    try:
        parsed = parse_manifest(bytes(manifest.raw), manifest.media_type)
    except (RegistryError, ValueError):
        return {}
    return {layer.digest: number for number, layer in enumerate(parsed.layers, start=1)}


def security_context(request, manifest: Manifest) -> dict:
    wanted = [level for level in request.GET.getlist("severity") if level in scanning_selectors.SEVERITY_ORDER]
    only_fixable = (request.GET.get("fixable") or "").lower() in TRUE_VALUES
    scan = scanning_selectors.manifest_scan(manifest=manifest)
    summary = scanning_selectors.manifest_summaries(manifest_ids=[manifest.pk])[manifest.pk]
    packages = []
    if summary.status == ManifestScan.Status.SCANNED:
        packages = scanning_selectors.manifest_vulnerabilities(
            manifest=manifest, severities=wanted or None, fixable=True if only_fixable else None
        )
    layers = _layer_numbers(manifest)
    for package in packages:
        package.layer_number = layers.get(package.added_by)
    shown = sum(len(p.vulnerabilities) for p in packages)
    return {
        "manifest": manifest,
        "scan": scan,
        "summary": summary,
        "packages": packages,
        "layer_count": len(layers),
        "shown_vulnerabilities": shown,
        "shown_fixable": sum(p.fixable for p in packages),
        "filtered": bool(wanted) or only_fixable,
        "only_fixable": only_fixable,
        "severity_choices": [
            SeverityChoice(
                level, summary.by_severity.get(level, 0), summary.fixable_by_severity.get(level, 0), level in wanted
            )
            for level in scanning_selectors.SEVERITY_ORDER
        ],
        "severity_counts": [(level, n) for level, n in summary.by_severity.items() if n],
    }


class ManifestSecurityView(UiView):
    """``GET /repository/<r>/manifest/<digest>``: the vulnerabilities of one image, by package."""

    def get(self, request, repository, digest):
        access = repository_access(request, repository, need=Role.READ)
        if not scanning_enabled():
            return error_page(request, 404, DISABLED_MESSAGE)
        manifest = None
        if names.DIGEST_RE.match(digest):
            manifest = registry_selectors.manifest_in_repository(repository=access.repository, digest=digest)
        if manifest is None:
            raise Http404("No such manifest")
        tag = (request.GET.get("tag") or "").strip()[:255]
        context = {
            "repository": access.repository,
            "access": access,
            "tag_name": tag,
            **security_context(request, manifest),
        }
        return render(request, "ui/repository/security.html", context)
