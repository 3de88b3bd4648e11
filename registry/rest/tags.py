"""Tags of a repository (Quay's tag API): history, create or move, expiration, delete, restore,
and the admin's permanent delete (out of the time machine)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts import scopes
from quay_site.rest.errors import ApiError, InvalidRequest, NotFound
from quay_site.rest.params import int_param
from quay_site.rest.views import ApiView
from registry import errors as registry_errors
from registry import selectors, services
from registry.models import Repository, Role
from registry.rest import tag_serializers as s
from registry.rest.access import ScopeOrAnonymousPermission, client_ip, flag, principal_of, repository_for

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
# Far past any real history, and small enough that the offset stays a database integer.
MAX_PAGE = 10**9


def repository_param() -> OpenApiParameter:
    return OpenApiParameter(
        "repository", OpenApiTypes.STR, OpenApiParameter.PATH, description="The full path: namespace/name"
    )


TAG_PARAM = OpenApiParameter("tag", OpenApiTypes.STR, OpenApiParameter.PATH, description="The name of the tag")


def writable(repository: Repository) -> None:
    """Tags of a read-only repository do not change (Quay answers 503, as for mirrors)."""
    if repository.state != Repository.State.NORMAL:
        raise ApiError(
            f"Repository is in read only or mirror mode: {repository.state}", status=503, error_type="invalid_request"
        )


def name_filter(request) -> tuple[str, str] | None:
    """Quay's ``filter_tag_name``: ``like:<text>`` (name contains) or ``eq:<name>``."""
    value = request.query_params.get("filter_tag_name") or ""
    if not value:
        return None
    operation, sep, text = value.partition(":")
    if not sep or operation not in selectors.TAG_NAME_FILTER_OPERATIONS:
        raise InvalidRequest(
            "Unsupported syntax for filter_tag_name: expected <operation>:<tag_name>, operation like or eq"
        )
    return operation, text


def expiration_from(value) -> datetime | None:
    if value is None:
        return None
    if not math.isfinite(value):
        raise InvalidRequest("expiration must be a time in seconds since the epoch")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidRequest("expiration must be a time in seconds since the epoch") from None


def refused(exc: services.RequestRefused) -> InvalidRequest:
    return InvalidRequest(str(exc))


class TagListView(ApiView):
    """``GET /repository/<r>/tag/``: the repository's tag history, alive and ended."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "listRepoTags"}

    @extend_schema(
        parameters=[
            repository_param(),
            OpenApiParameter("specificTag", OpenApiTypes.STR, description="Only the history of this tag"),
            OpenApiParameter(
                "filter_tag_name",
                OpenApiTypes.STR,
                description="like:<text> (names containing text) or eq:<name> (exactly that name)",
            ),
            OpenApiParameter("onlyActiveTags", OpenApiTypes.BOOL, description="Only alive tags"),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description=f"Entries per page (default {DEFAULT_PAGE_SIZE}, at most 100)"
            ),
            OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1"),
        ],
        responses={200: s.TagListDoc},
    )
    def get(self, request, repository):
        """List tag history entries, newest first (public repositories anonymously)."""
        repo, _ = repository_for(request, repository, need=Role.READ)
        page = max(1, int_param(request, "page", 1))
        if page > MAX_PAGE:
            raise InvalidRequest(f"page must be at most {MAX_PAGE}")
        limit = min(MAX_PAGE_SIZE, max(1, int_param(request, "limit", DEFAULT_PAGE_SIZE)))
        rows, more = selectors.tag_history_page(
            repository=repo,
            page=page,
            limit=limit,
            specific_tag=request.query_params.get("specificTag") or None,
            only_active=flag(request, "onlyActiveTags"),
            name_filter=name_filter(request),
        )
        return Response({"tags": [s.tag_view(row) for row in rows], "page": page, "has_additional": more})


class TagView(ApiView):
    """``PUT|DELETE /repository/<r>/tag/<tag>``."""

    required_scopes = {"PUT": scopes.REPO_WRITE, "DELETE": scopes.REPO_WRITE}
    nicknames = {"PUT": "changeTag", "DELETE": "deleteFullTag"}

    @extend_schema(
        parameters=[repository_param(), TAG_PARAM],
        request=s.ChangeTagInput,
        responses={201: OpenApiResponse(OpenApiTypes.STR, description='The string "Updated"')},
    )
    def put(self, request, repository, tag):
        """Point a tag at a manifest (creating or moving it), or change its expiration."""
        repo, _ = repository_for(request, repository, need=Role.WRITE)
        writable(repo)
        data = s.ChangeTagInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        digest = values.get("manifest_digest")
        principal, ip = principal_of(request), client_ip(request)
        try:
            if digest:
                extra = {"expiration": expiration_from(values["expiration"])} if "expiration" in values else {}
                services.tag_create_or_move(
                    repository=repo, name=tag, manifest_digest=digest, principal=principal, ip=ip, **extra
                )
            elif "expiration" in values:
                services.tag_set_expiration(
                    repository=repo,
                    name=tag,
                    expiration=expiration_from(values["expiration"]),
                    principal=principal,
                    ip=ip,
                )
            else:
                raise InvalidRequest("manifest_digest or expiration is required")
        except registry_errors.ManifestUnknown:
            raise NotFound() from None
        except services.RequestRefused as exc:
            raise refused(exc) from None
        return Response("Updated", status=201)

    @extend_schema(parameters=[repository_param(), TAG_PARAM], responses={204: OpenApiResponse(description="Deleted")})
    def delete(self, request, repository, tag):
        """Delete a tag: it ends now and stays restorable for the namespace's time machine window."""
        repo, _ = repository_for(request, repository, need=Role.WRITE)
        writable(repo)
        try:
            services.tag_delete(repository=repo, name=tag, principal=principal_of(request), ip=client_ip(request))
        except registry_errors.ManifestUnknown:
            raise NotFound() from None
        return Response(status=204)


class TagRestoreView(ApiView):
    """``POST /repository/<r>/tag/<tag>/restore``: go back in time."""

    required_scopes = {"POST": scopes.REPO_WRITE}
    nicknames = {"POST": "restoreTag"}

    @extend_schema(
        parameters=[repository_param(), TAG_PARAM],
        request=s.RestoreTagInput,
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="An empty object")},
    )
    def post(self, request, repository, tag):
        """Point the tag back at a manifest from its history (within the time machine window)."""
        repo, _ = repository_for(request, repository, need=Role.WRITE)
        writable(repo)
        data = s.RestoreTagInput(data=request.data)
        data.is_valid(raise_exception=True)
        digest = data.validated_data.get("manifest_digest")
        if not digest:
            raise InvalidRequest("Missing manifest_digest")
        try:
            services.tag_restore(
                repository=repo,
                name=tag,
                manifest_digest=digest,
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except registry_errors.ManifestUnknown:
            raise NotFound() from None
        except services.RequestRefused as exc:
            raise refused(exc) from None
        return Response({})


class TagExpireView(ApiView):
    """``POST /repository/<r>/tag/<tag>/expire``: take a tag out of the time machine for good."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "removeTagFromTimemachine"}

    @extend_schema(
        parameters=[repository_param(), TAG_PARAM],
        request=s.ExpireTagInput,
        responses={200: OpenApiResponse(OpenApiTypes.STR, description="An empty string")},
    )
    def post(self, request, repository, tag):
        """End a tag permanently (is_alive) or purge its ended entries on a manifest: they can no
        longer be restored, and garbage collection may reclaim them at once. Admins only."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        data = s.ExpireTagInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not values["is_alive"] and not values.get("manifest_digest"):
            raise InvalidRequest("manifest_digest required when is_alive set to false")
        try:
            services.tag_purge(
                repository=repo,
                name=tag,
                manifest_digest=values.get("manifest_digest"),
                alive=values["is_alive"],
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except registry_errors.ManifestUnknown:
            raise NotFound() from None
        except services.RequestRefused as exc:
            raise refused(exc) from None
        return Response("")
