"""The OCI distribution API v1.1 (``/v2/``) and the Docker token endpoint (``/v2/auth``).

Views validate input, authorize through RegistryView, call services or selectors, and shape
the response the spec asks for. No registry logic lives here.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from urllib.parse import urlencode

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils import timezone
from rest_framework.views import APIView

from observability import metrics
from registry import errors, failed_logins, names, selectors, services, usage
from registry.api.base import (
    RegistryView,
    _Unauthorized,
    body_stream,
    client_ip,
    error_response,
    service_name,
)
from registry.permissions import ANONYMOUS
from registry.storage import blob_name, get_blob_store
from registry.tokens import BadCredentials, issue_token, principal_from_basic

CONTENT_RANGE_RE = re.compile(r"^(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?$")
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _page_size(request) -> int:
    try:
        n = int(request.GET.get("n", settings.REGISTRY_PAGE_DEFAULT))
    except ValueError:
        n = settings.REGISTRY_PAGE_DEFAULT
    return max(0, min(n, settings.REGISTRY_PAGE_MAX))


def _next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


class TokenView(APIView):
    """Docker token endpoint: HTTP Basic credentials (optional) + scopes -> a signed JWT."""

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []

    def get(self, request):
        principal = ANONYMOUS
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            if failed_logins.blocked(client_ip(request)):
                exc = errors.TooManyRequests({"reason": "too many failed logins; try again later"})
                exc.headers["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW_SECONDS)
                return error_response(request, exc)
            scheme, _, value = header.partition(" ")
            try:
                if scheme.lower() != "basic":
                    raise BadCredentials()
                username, sep, password = base64.b64decode(value.strip()).decode().partition(":")
                if not sep:
                    raise BadCredentials()
                principal = principal_from_basic(username, password)
            except (BadCredentials, binascii.Error, UnicodeDecodeError, ValueError):
                failed_logins.record(client_ip(request))
                response = error_response(request, errors.Unauthorized({"reason": "invalid username or password"}))
                response["WWW-Authenticate"] = f'Basic realm="{service_name(request)}"'
                return response
        scopes = request.GET.getlist("scope")
        # Some clients send several scopes space-separated in one parameter.
        scopes = [part for scope in scopes for part in scope.split(" ") if part]
        return JsonResponse(issue_token(principal, scopes, service_name(request)))


class BaseView(RegistryView):
    """``GET /v2/``: 200 with a valid token, else the Bearer challenge."""

    def get(self, request):
        if self.token is None:
            raise _Unauthorized(None)
        return JsonResponse({})


class CatalogView(RegistryView):
    def get(self, request):
        if self.token is None:
            raise _Unauthorized("registry:catalog:*")
        n = _page_size(request)
        repositories, more = selectors.catalog_page(self.principal(), n=n, last=request.GET.get("last"))
        response = JsonResponse({"repositories": repositories})
        if more and repositories:
            response["Link"] = _next_link(request.path, n, repositories[-1])
        return response


class TagsListView(RegistryView):
    def get(self, request, name):
        repository = self.repository_for(name, "pull")
        n = _page_size(request)
        tags, more = selectors.tag_names_page(repository, n=n, last=request.GET.get("last"))
        response = JsonResponse({"name": name, "tags": tags})
        if more and tags:
            response["Link"] = _next_link(request.path, n, tags[-1])
        return response


class ManifestView(RegistryView):
    def _validate_reference(self, reference: str) -> None:
        if names.is_digest(reference):
            if not names.ANY_DIGEST_RE.match(reference):
                raise errors.DigestInvalid({"digest": reference})
        elif not names.TAG_RE.match(reference):
            raise errors.ManifestUnknown({"reference": reference})

    def _fetch(self, request, name, reference, *, with_body: bool):
        self._validate_reference(reference)
        target = selectors.manifest_for_pull(name, reference)
        self.authorize(name, "pull", is_public=target.is_public if target is not None else None)
        if target is None:
            raise errors.NameUnknown({"name": name})
        if target.digest is None:
            raise errors.ManifestUnknown({"reference": reference})
        response = HttpResponse(target.raw if with_body else b"", content_type=target.media_type)
        response["Content-Length"] = str(target.size)
        response["Docker-Content-Digest"] = target.digest
        response["ETag"] = f'"{target.digest}"'
        if with_body:
            token = self.token
            usage.log_pull(
                actor_id=token.user_id if token else None,
                actor_name=token.subject if token else "",
                repository_id=target.repository_id,
                namespace_id=target.namespace_id,
                ip=client_ip(request),
                metadata={"reference": reference, "digest": target.digest},
            )
        return response

    def get(self, request, name, reference):
        return self._fetch(request, name, reference, with_body=True)

    def head(self, request, name, reference):
        return self._fetch(request, name, reference, with_body=False)

    def put(self, request, name, reference):
        started = time.perf_counter()
        repository = self.repository_for(name, "push")
        stream, length = body_stream(request)
        limit = settings.MANIFEST_MAX_BYTES
        if length is not None and length > limit:
            raise errors.ManifestTooLarge({"limit": limit})
        # Read one byte past the limit, never more, to detect an oversized chunked body.
        raw = stream.read(limit + 1) if length is None else stream.read(length)
        if len(raw) > limit:
            raise errors.ManifestTooLarge({"limit": limit})
        manifest, parsed = services.manifest_put(
            repository=repository,
            reference=reference,
            raw=raw,
            content_type=request.META.get("CONTENT_TYPE", ""),
            principal=self.principal(),
            ip=client_ip(request),
        )
        response = HttpResponse(status=201)
        response["Location"] = f"/v2/{name}/manifests/{manifest.digest}"
        response["Docker-Content-Digest"] = manifest.digest
        if parsed.subject is not None:
            response["OCI-Subject"] = parsed.subject.digest
        metrics.manifest_put(time.perf_counter() - started)
        return response

    def delete(self, request, name, reference):
        repository = self.repository_for(name, "delete")
        if names.is_digest(reference):
            names.validate_digest(reference)
            services.manifest_delete(
                repository=repository, digest=reference, principal=self.principal(), ip=client_ip(request)
            )
        else:
            self._validate_reference(reference)
            services.tag_delete(
                repository=repository, name=reference, principal=self.principal(), ip=client_ip(request)
            )
        return HttpResponse(status=202)


class _RangeFile:
    """A file limited to ``length`` bytes from its current position.

    ``fileno`` is kept so gunicorn can still ``sendfile`` (it sends Content-Length bytes from
    the descriptor's position); other servers read through ``read``.
    """

    def __init__(self, f, length: int):
        self._f = f
        self._left = length

    def fileno(self):
        return self._f.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        # gunicorn seeks back after a sendfile that failed (a client gone before the first byte).
        return self._f.seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def close(self):
        self._f.close()


class _BlobFileResponse(FileResponse):
    """FileResponse without its guessing: the view sets length, type and no disposition."""

    def set_headers(self, filelike):
        pass


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single satisfiable range, None to serve the whole blob.

    Raises BlobRangeNotSatisfiable for a range past the end.
    """
    match = RANGE_RE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # Multiple or malformed ranges: RFC 9110 lets us ignore the header.
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    else:
        suffix = int(last)
        if suffix == 0:
            raise errors.BlobRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        start, end = max(size - suffix, 0), size - 1
    if start >= size:
        raise errors.BlobRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


class BlobView(RegistryView):
    def _blob(self, name, digest):
        names.validate_digest(digest)
        target = selectors.blob_for_pull(name, digest)
        self.authorize(name, "pull", is_public=target.is_public if target is not None else None)
        if target is None:
            raise errors.NameUnknown({"name": name})
        if target.digest is None:
            raise errors.BlobUnknown({"digest": digest})
        if target.refresh_link is not None:
            # A client that finds the blob will skip uploading it: keep it linked for its push.
            services.blob_link_refresh(link_id=target.refresh_link)
        return target

    def _headers(self, response, blob):
        response["Docker-Content-Digest"] = blob.digest
        response["ETag"] = f'"{blob.digest}"'
        response["Accept-Ranges"] = "bytes"
        # Content-addressed: the bytes behind a digest never change.
        response["Cache-Control"] = "max-age=31536000, immutable"
        return response

    def head(self, request, name, digest):
        blob = self._blob(name, digest)
        response = HttpResponse(content_type="application/octet-stream")
        response["Content-Length"] = str(blob.size)
        return self._headers(response, blob)

    def get(self, request, name, digest):
        blob = self._blob(name, digest)
        store = get_blob_store()
        redirect = store.redirect_url(blob.digest)
        if redirect:
            response = HttpResponseRedirect(redirect)
            response.status_code = 307
            metrics.blob_pulled(blob.size)  # the client downloads it from S3
            return self._headers(response, blob)
        byte_range = _parse_range(request.META["HTTP_RANGE"], blob.size) if "HTTP_RANGE" in request.META else None
        metrics.blob_pulled(blob.size if byte_range is None else byte_range[1] - byte_range[0] + 1)
        if settings.X_ACCEL_REDIRECT_PREFIX:
            # nginx serves the file (and the Range) itself from an internal location.
            response = HttpResponse(content_type="application/octet-stream")
            response["X-Accel-Redirect"] = f"{settings.X_ACCEL_REDIRECT_PREFIX.rstrip('/')}/{blob_name(blob.digest)}"
            return self._headers(response, blob)
        f = store.open_blob(blob.digest)
        if byte_range is None:
            response = _BlobFileResponse(f, content_type="application/octet-stream")
            response["Content-Length"] = str(blob.size)
        else:
            start, end = byte_range
            f.seek(start)
            response = _BlobFileResponse(
                _RangeFile(f, end - start + 1), content_type="application/octet-stream", status=206
            )
            response["Content-Length"] = str(end - start + 1)
            response["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        return self._headers(response, blob)

    def delete(self, request, name, digest):
        repository = self.repository_for(name, "delete")
        names.validate_digest(digest)
        services.blob_unlink(repository=repository, digest=digest, principal=self.principal(), ip=client_ip(request))
        return HttpResponse(status=202)


def _upload_response(name: str, session, status: int = 202) -> HttpResponse:
    response = HttpResponse(status=status)
    response["Location"] = f"/v2/{name}/blobs/uploads/{session.pk}"
    response["Range"] = f"0-{max(session.offset - 1, 0)}"
    response["Docker-Upload-UUID"] = str(session.pk)
    response["Content-Length"] = "0"
    return response


def _blob_created(name: str, digest: str) -> HttpResponse:
    response = HttpResponse(status=201)
    response["Location"] = f"/v2/{name}/blobs/{digest}"
    response["Docker-Content-Digest"] = digest
    response["Content-Length"] = "0"
    return response


def _content_range(request, length: int | None) -> int | None:
    """The start offset a chunk declares with Content-Range, checked against its length."""
    header = request.META.get("HTTP_CONTENT_RANGE")
    if not header:
        return None
    match = CONTENT_RANGE_RE.match(header.strip())
    if not match:
        raise errors.RangeInvalid({"Content-Range": header})
    start, end = int(match.group(1)), int(match.group(2))
    if end < start or (length is not None and end - start + 1 != length):
        raise errors.RangeInvalid({"Content-Range": header, "Content-Length": length})
    return start


class UploadStartView(RegistryView):
    def post(self, request, name):
        repository = self.repository_for(name, "push")
        mount, source_name = request.GET.get("mount"), request.GET.get("from")
        if mount and source_name:
            names.validate_digest(mount)
            blob = self._mount(repository, mount, source_name)
            if blob is not None:
                return _blob_created(name, blob.digest)
        digest = request.GET.get("digest")
        if digest is not None:
            names.validate_digest(digest)
        if digest is None:
            session = services.upload_start(repository=repository, owner=self.principal_key())
            return _upload_response(name, session)
        # Monolithic upload: the whole blob is the body of the POST.
        stream, length = body_stream(request)
        started = time.perf_counter()
        blob = services.blob_upload_monolithic(repository=repository, digest=digest, stream=stream, length=length)
        metrics.blob_pushed(blob.size, time.perf_counter() - started)
        return _blob_created(name, blob.digest)

    def _mount(self, repository, digest, source_name):
        """Mount only from a repository the caller may pull from; otherwise fall back."""
        try:
            source = selectors.repository_by_name(source_name)
        except errors.NameInvalid:
            return None
        if source is None or not (source.is_public or self.allows(source_name, "pull")):
            return None
        return services.blob_mount(repository=repository, digest=digest, source=source)


class UploadView(RegistryView):
    def _session(self, name, upload_id, action="push"):
        repository = self.repository_for(name, action)
        return services.upload_get(repository=repository, upload_id=upload_id, principal_key=self.principal_key())

    def get(self, request, name, upload_id):
        session = self._session(name, upload_id)
        response = _upload_response(name, session, status=204)
        return response

    def patch(self, request, name, upload_id):
        session = self._session(name, upload_id)
        stream, length = body_stream(request)
        start = _content_range(request, length)
        services.upload_append(session=session, stream=stream, length=length, start=start)
        return _upload_response(name, session)

    def put(self, request, name, upload_id):
        session = self._session(name, upload_id)
        digest = request.GET.get("digest")
        if not digest:
            raise errors.DigestInvalid({"reason": "the digest query parameter is required"})
        names.validate_digest(digest)
        stream, length = body_stream(request)
        start = _content_range(request, length)
        blob = services.upload_complete(session=session, digest=digest, stream=stream, length=length, start=start)
        metrics.blob_pushed(blob.size, (timezone.now() - session.started).total_seconds())
        return _blob_created(name, blob.digest)

    def delete(self, request, name, upload_id):
        session = self._session(name, upload_id)
        services.upload_cancel(session=session)
        return HttpResponse(status=204)


class ReferrersView(RegistryView):
    def get(self, request, name, digest):
        repository = self.repository_for(name, "pull")
        names.validate_digest(digest)
        artifact_type = request.GET.get("artifactType") or None
        descriptors = selectors.referrers(repository, digest, artifact_type=artifact_type)
        n = _page_size(request)
        last = request.GET.get("last")
        if last:
            descriptors = [d for d in descriptors if d["digest"] > last]
        page = descriptors[:n]
        response = HttpResponse(selectors.referrers_index(page), content_type=OCI_INDEX)
        if artifact_type:
            response["OCI-Filters-Applied"] = "artifactType"
        if len(descriptors) > n and page:
            query = {"n": n, "last": page[-1]["digest"]}
            if artifact_type:
                query["artifactType"] = artifact_type
            response["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
        return response
