"""Quay's build endpoints: ``filedrop`` and ``repository/<r>/build/...``.

Reading a repository's builds needs read access (anonymous callers may read a public
repository's); starting and cancelling need write. A build of another repository, or one the
caller cannot see, is a 404. While builds are switched off every endpoint answers 404 saying so.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts import scopes
from builds import selectors, services
from builds.errors import BuildError, BuildsDisabled
from builds.rest import serializers as s
from quay_site.rest.errors import ApiError, InvalidRequest, NotFound
from quay_site.rest.params import int_param
from quay_site.rest.views import ApiView
from registry.models import ROLE_RANK, Role
from registry.rest.access import ScopeOrAnonymousPermission, client_ip, principal_of, repository_for

DEFAULT_LIMIT, MAX_LIMIT = 5, 100
CANCELLED = OpenApiResponse(response=str, description='"Okay": the build is cancelled')


def api_error(exc: BuildError) -> ApiError:
    """A service's refusal in Quay's error format, with the status the error carries."""
    return ApiError(str(exc), status=exc.status, error_type=exc.error_type)


def _require_enabled() -> None:
    if not selectors.builds_enabled():
        raise api_error(BuildsDisabled())


def _build(request, repository: str, build_uuid: str, *, need: str):
    repo, role = repository_for(request, repository, need=need)
    build = selectors.build_by_uuid(repository=repo, build_uuid=build_uuid)
    if build is None:
        raise NotFound()
    return build, role


def _can_write(role: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[Role.WRITE]


class FileDropView(ApiView):
    """``POST /filedrop/``: reserve an upload for a build source."""

    required_scopes = {"POST": scopes.REPO_WRITE}
    nicknames = {"POST": "getFiledropUrl"}

    @extend_schema(request=s.FileDropInput, responses={200: s.FileDropDoc})
    def post(self, request):
        """A URL to PUT a Dockerfile or an archive to, and the file_id to build it with."""
        _require_enabled()
        data = s.FileDropInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            package = services.package_create(owner=request.user, mime_type=data.validated_data["mimeType"])
        except BuildError as exc:
            raise api_error(exc) from None
        url = request.build_absolute_uri(reverse("build-package-upload", args=[package.uuid]))
        return Response({"url": url, "file_id": str(package.uuid)})


class BuildListView(ApiView):
    """``GET|POST /repository/<r>/build/``."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ, "POST": scopes.REPO_WRITE}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "getRepoBuilds", "POST": "requestRepoBuild"}

    @extend_schema(parameters=[s.REPOSITORY, s.LIMIT, s.SINCE], responses={200: s.BuildListDoc})
    def get(self, request, repository):
        """The repository's builds, newest first."""
        _require_enabled()
        repo, role = repository_for(request, repository, need=Role.READ)
        limit = int_param(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        since = int_param(request, "since", None, low=0, high=2**40)
        since_at = datetime.fromtimestamp(since, tz=UTC) if since is not None else None
        rows = selectors.builds_for_repository(repository=repo, limit=limit, since=since_at)
        return Response({"builds": [s.build_view(build, can_write=_can_write(role)) for build in rows]})

    @extend_schema(parameters=[s.REPOSITORY], request=s.BuildRequestInput, responses={201: s.BuildDoc})
    def post(self, request, repository):
        """Queue a build from an uploaded file (``file_id``) or an ``archive_url``."""
        _require_enabled()
        repo, role = repository_for(request, repository, need=Role.WRITE)
        data = s.BuildRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not values.get("file_id") and not values.get("archive_url"):
            raise InvalidRequest("file_id or archive_url required")
        try:
            build = services.build_create(
                repository=repo,
                principal=principal_of(request),
                package=values.get("file_id") or None,
                archive_url=values.get("archive_url") or None,
                subdirectory=values.get("subdirectory"),
                dockerfile_path=values.get("dockerfile_path"),
                context=values.get("context"),
                tags=values.get("docker_tags"),
                pull_robot=values.get("pull_robot") or None,
                ip=client_ip(request),
            )
        except BuildError as exc:
            raise api_error(exc) from None
        location = request.build_absolute_uri(
            reverse("api-repository-build-status", kwargs={"repository": repository, "build_uuid": build.uuid})
        )
        return Response(s.build_view(build, can_write=_can_write(role)), status=201, headers={"Location": location})


class BuildView(ApiView):
    """``GET|DELETE /repository/<r>/build/<uuid>``."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ, "DELETE": scopes.REPO_WRITE}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "getRepoBuild", "DELETE": "cancelRepoBuild"}

    @extend_schema(parameters=[s.REPOSITORY, s.BUILD_UUID], responses={200: s.BuildDoc})
    def get(self, request, repository, build_uuid):
        """One build."""
        _require_enabled()
        build, role = _build(request, repository, build_uuid, need=Role.READ)
        return Response(s.build_view(build, can_write=_can_write(role)))

    @extend_schema(parameters=[s.REPOSITORY, s.BUILD_UUID], responses={201: CANCELLED})
    def delete(self, request, repository, build_uuid):
        """Cancel a build that is not pushing yet (400 once it is, or when it has ended)."""
        _require_enabled()
        build, _ = _build(request, repository, build_uuid, need=Role.WRITE)
        try:
            services.build_cancel(build=build, principal=principal_of(request), ip=client_ip(request))
        except BuildError as exc:
            raise api_error(exc) from None
        return Response("Okay", status=201)


class BuildStatusView(ApiView):
    """``GET /repository/<r>/build/<uuid>/status``."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "getRepoBuildStatus"}

    @extend_schema(parameters=[s.REPOSITORY, s.BUILD_UUID], responses={200: s.BuildDoc})
    def get(self, request, repository, build_uuid):
        """The build's phase and status."""
        _require_enabled()
        build, role = _build(request, repository, build_uuid, need=Role.READ)
        return Response(s.build_view(build, can_write=_can_write(role)))


class BuildLogsView(ApiView):
    """``GET /repository/<r>/build/<uuid>/logs?start=N``."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "getRepoBuildLogs"}

    @extend_schema(parameters=[s.REPOSITORY, s.BUILD_UUID, s.START], responses={200: s.BuildLogsDoc})
    def get(self, request, repository, build_uuid):
        """The build's log entries from ``start`` on, and how many there are in all."""
        _require_enabled()
        build, _ = _build(request, repository, build_uuid, need=Role.READ)
        start = int_param(request, "start", 0, low=0, high=2**31)
        entries, total = selectors.build_logs(build=build, start=start)
        return Response({"start": start, "total": total, "logs": entries})
