"""Manifests of a repository as Quay's API shows them: layers with their history, size, config,
platforms of an index, and labels."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts import scopes
from quay_site.rest.errors import NotFound
from quay_site.rest.views import ApiView
from registry import selectors
from registry.models import Role
from registry.rest import tag_serializers as s
from registry.rest.access import ScopeOrAnonymousPermission, repository_for
from registry.rest.tags import repository_param

MANIFEST_PARAM = OpenApiParameter(
    "manifestref", OpenApiTypes.STR, OpenApiParameter.PATH, description="The digest of the manifest"
)


class ManifestView(ApiView):
    """``GET /repository/<r>/manifest/<digest>``."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "getRepoManifest"}

    @extend_schema(parameters=[repository_param(), MANIFEST_PARAM], responses={200: s.ManifestDoc})
    def get(self, request, repository, manifestref):
        """A stored manifest: its bytes, layers (with the config's history), config and platforms."""
        repo, _ = repository_for(request, repository, need=Role.READ)
        details = selectors.manifest_details(repository=repo, digest=manifestref)
        if details is None:
            raise NotFound()
        return Response(s.manifest_view(details))


class ManifestLabelsView(ApiView):
    """``GET /repository/<r>/manifest/<digest>/labels``."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "listManifestLabels"}

    @extend_schema(
        parameters=[
            repository_param(),
            MANIFEST_PARAM,
            OpenApiParameter("filter", OpenApiTypes.STR, description="Only labels whose key starts with this"),
        ],
        responses={200: s.LabelListDoc},
    )
    def get(self, request, repository, manifestref):
        """The manifest's labels: its image config's labels and, for OCI manifests, its annotations."""
        repo, _ = repository_for(request, repository, need=Role.READ)
        manifest = selectors.manifest_in_repository(repository=repo, digest=manifestref)
        if manifest is None:
            raise NotFound()
        prefix = request.query_params.get("filter") or ""
        labels = selectors.manifest_labels(manifest)
        return Response(
            {
                "labels": [
                    s.label_view(manifest.digest, key, value)
                    for key, value in sorted(labels.items())
                    if key.startswith(prefix)
                ]
            }
        )
