"""Build package transfer outside the Quay API: the filedrop upload and the workers' download.

``PUT /filedrop/<file_id>`` takes the bytes of a package reserved with ``POST /api/v1/filedrop/``
(the same user, by session or token; raw bytes, not JSON, so it is not part of the documented
API). ``GET /buildpack/<build uuid>`` hands a build's package to the worker running it; the
worker proves it with its job token (``Authorization: Bearer <token>``), which must be a live
repository access token *and* the build's current one, so a finished, requeued or other build's
token is refused.
"""

from __future__ import annotations

from django.http import FileResponse, JsonResponse
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import scopes
from builds import packages, selectors, services
from builds.errors import BuildError, PackageError
from builds.rest.views import api_error
from quay_site.rest.errors import ApiError, InvalidRequest, NotFound, problem
from quay_site.rest.views import ApiView
from registry.tokens import BadCredentials, principal_from_basic


class PackageUploadView(ApiView):
    """``PUT /filedrop/<file_id>``: the bytes of a reserved build package."""

    required_scopes = {"PUT": scopes.REPO_WRITE}

    @extend_schema(exclude=True)
    def put(self, request, file_id):
        package = selectors.package_for_upload(package_uuid=file_id, user=request.user)
        if package is None:
            raise NotFound()
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        try:
            length = int(raw_length)
        except ValueError:
            raise ApiError("Content-Length is required", status=411) from None
        if length <= 0:
            raise InvalidRequest("The upload is empty")
        try:
            # The Django request itself is the body stream: DRF's parsers never read it.
            package = services.package_upload(package=package, stream=request._request, length=length)
        except BuildError as exc:
            raise api_error(exc) from None
        return Response(
            {
                "file_id": str(package.uuid),
                "size": package.size,
                "sha256": package.sha256,
                "mime_type": package.mime_type,
            }
        )


def _refused(request, status: int, detail: str) -> JsonResponse:
    error_type = "invalid_token" if status == 401 else "insufficient_scope" if status == 403 else "not_found"
    response = JsonResponse(problem(request, status, error_type, detail), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="buildpack"'
    return response


@require_safe
def build_package_download(request, build_uuid):
    """``GET /buildpack/<build uuid>``: the package of the build, to the worker holding its job."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _refused(request, 401, "A job token is required (Authorization: Bearer <token>)")
    build = selectors.build_by_uuid_any(build_uuid=build_uuid)
    try:
        # The registry's own check of a repository access token (prefix, hash, expiry).
        principal = principal_from_basic("$token", token)
    except BadCredentials:
        principal = None
    if (
        build is None
        or principal is None
        or build.access_token_id is None
        or principal.access_token_id != build.access_token_id
        or build.is_final
    ):
        # One answer for all of these: a caller learns nothing about which builds exist.
        return _refused(request, 403, "The job token is not valid for this build")
    package = build.package
    if package is None or package.uploaded is None:
        return _refused(request, 404, "This build has no package (a git build clones its source)")
    try:
        stream = packages.package_open(package)
    except PackageError as exc:
        return _refused(request, 404, str(exc))
    response = FileResponse(stream, content_type=package.mime_type or "application/octet-stream")
    response["Content-Length"] = str(package.size)
    response["X-Package-Kind"] = packages.package_kind(package)
    response["X-Package-Sha256"] = package.sha256
    return response
