"""``GET /c1/squash/<namespace>/<repository>/<tag>[?platform=os/arch[/variant]]``: a tag's image
flattened into one layer, as a ``docker load`` / ``podman load`` tarball.

For ``curl -L -f https://<robot>:<token>@<host>/c1/squash/... | docker load``: HTTP Basic with a
robot token, an app token or a user's password (the credentials ``/v2/auth`` takes), or nothing
for a public repository. Errors are Quay's problem JSON. The view checks access and asks
squash.services for the bytes; the cached tarball is served like a blob.
"""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.views import View

from accounts import scopes as quay_scopes
from quay_site.rest.errors import problem
from registry import errors as registry_errors
from registry import failed_logins, names
from registry import selectors as registry_selectors
from registry.api.base import client_ip
from registry.permissions import ANONYMOUS, Principal, repository_role
from registry.tokens import BadCredentials, OAuthPrincipal, principal_from_basic
from squash import selectors, services
from squash.selectors import SquashRefused
from squash.store import get_squash_store

CONTENT_TYPE = "application/x-tar"


class _TarballFileResponse(FileResponse):
    """FileResponse without its guessing (gunicorn still sends the file with sendfile)."""

    def set_headers(self, filelike):
        pass


def _error(request, status: int, message: str, error_type: str = "invalid_request") -> JsonResponse:
    response = JsonResponse(problem(request, status, error_type, message), status=status)
    response["Cache-Control"] = "no-store"
    return response


def _challenge(request, message: str) -> JsonResponse:
    response = _error(request, 401, message, "invalid_token")
    host = settings.SERVER_HOSTNAME or request.get_host()
    response["WWW-Authenticate"] = f'Basic realm="{host}"'
    return response


def registry_host(request) -> str:
    return settings.SERVER_HOSTNAME or request.get_host()


class SquashView(View):
    http_method_names = ["get"]

    def _principal(self, request) -> Principal | HttpResponse:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return ANONYMOUS
        ip = client_ip(request)
        if failed_logins.blocked(ip):
            response = _error(request, 429, "Too many failed logins; try again later", "too_many_requests")
            response["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW_SECONDS)
            return response
        scheme, _, value = header.partition(" ")
        try:
            if scheme.lower() != "basic":
                raise BadCredentials()
            username, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            if not sep:
                raise BadCredentials()
            return principal_from_basic(username, password)
        except (BadCredentials, binascii.Error, UnicodeDecodeError, ValueError):
            failed_logins.record(ip)
            return _challenge(request, "Invalid username or password")

    def get(self, request, name: str, tag: str):
        principal = self._principal(request)
        if isinstance(principal, HttpResponse):
            return principal
        not_found = "No such repository or tag, or no read permission on it"
        try:
            names.split_repository_name(name)
            repository = registry_selectors.repository_by_name(name)
        except registry_errors.RegistryError:
            repository = None
        readable = repository is not None and repository_role(principal, repository) is not None
        if isinstance(principal, OAuthPrincipal) and quay_scopes.REPO_READ not in principal.oauth_scopes:
            readable = False
        if not readable:
            # Unknown and forbidden look the same; an anonymous caller is asked for credentials.
            if principal.kind == "anonymous":
                return _challenge(request, "Sign in with a robot token, an app token or a password")
            return _error(request, 404, not_found, "not_found")
        tag_row = registry_selectors.tag_alive(repository=repository, name=tag) if names.TAG_RE.match(tag) else None
        if tag_row is None:
            return _error(request, 404, f"No tag {tag} in {repository.full_name}", "not_found")
        try:
            target = selectors.squash_target(
                repository=repository,
                tag=tag_row,
                host=registry_host(request),
                platform=request.GET.get("platform") or None,
            )
            delivery = services.squash_open(target=target)
        except SquashRefused as exc:
            return _error(request, exc.status, exc.message)
        services.squash_log_download(principal=principal, repository=repository, target=target, ip=client_ip(request))
        filename = f"{repository.name.replace('/', '-')}-{tag}.squash.tar"
        response = None
        if isinstance(delivery, services.Cached):
            response = self._cached(delivery.row)
            if response is None:  # evicted between the lookup and the open: make it again
                delivery = services.squash_open(target=target)
                response = self._cached(delivery.row) if isinstance(delivery, services.Cached) else None
        if response is None and isinstance(delivery, services.Streaming):
            response = StreamingHttpResponse(iter(delivery), content_type=CONTENT_TYPE)
            response["Content-Length"] = str(delivery.size)
            response["X-Squash-Cache"] = "miss" if delivery.leader else "shared"
        if response is None:
            return _error(request, 503, "The squashed image is being replaced; try again", "unavailable")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "private, no-cache"
        return response

    def _cached(self, row) -> HttpResponse | None:
        store = get_squash_store()
        services.squash_mark_used(row=row)
        redirect = store.redirect_url(row.storage_name)
        if redirect:
            response = HttpResponseRedirect(redirect)
            response.status_code = 307
        elif settings.X_ACCEL_REDIRECT_PREFIX:
            # nginx sends the file from an internal location on STORAGE_DIR (deploy/nginx.conf).
            response = HttpResponse(content_type=CONTENT_TYPE)
            response["X-Accel-Redirect"] = f"{settings.X_ACCEL_REDIRECT_PREFIX.rstrip('/')}/{row.storage_name}"
        else:
            try:
                f = open(store.local_path(row.storage_name), "rb")
            except FileNotFoundError:
                return None
            response = _TarballFileResponse(f, content_type=CONTENT_TYPE)
            response["Content-Length"] = str(row.size)
        response["X-Squash-Cache"] = "hit"
        response["ETag"] = f'"sha256:{row.sha256}"'
        return response
