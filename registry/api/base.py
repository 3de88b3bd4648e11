"""The base of every /v2/ view: bearer-token authentication, OCI errors, common headers."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from registry import errors, selectors, services
from registry.models import Repository
from registry.permissions import Principal
from registry.tokens import InvalidToken, VerifiedToken, access_token_live, principal_for_token, verify_token

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
# Failures of what the registry stands on, answered as UNAVAILABLE (in the API's error format)
# rather than Django's HTML 500 page: the client sees a clear error and may retry.
BACKEND_ERRORS = (DatabaseError, OSError, BotoCoreError, ClientError)

logger = logging.getLogger("registry.api")


def service_name(request: HttpRequest) -> str:
    return settings.SERVER_HOSTNAME or request.get_host()


def realm(request: HttpRequest) -> str:
    scheme = settings.PREFERRED_URL_SCHEME or request.scheme
    return f"{scheme}://{service_name(request)}/v2/auth"


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def error_response(request: HttpRequest, exc: errors.RegistryError, scope: str | None = None) -> HttpResponse:
    response = JsonResponse({"errors": [exc.as_dict()]}, status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    if exc.status == 401:
        challenge = f'Bearer realm="{realm(request)}",service="{service_name(request)}"'
        if scope:
            challenge += f',scope="{scope}"'
        response["WWW-Authenticate"] = challenge
    response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    return response


class _Unauthorized(errors.Unauthorized):
    """UNAUTHORIZED carrying the scope to name in the challenge."""

    def __init__(self, scope: str | None, detail=None):
        super().__init__(detail)
        self.scope = scope


class RegistryTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <jwt>`` issued by /v2/auth; no header means anonymous."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Unauthorized(None, {"reason": "a bearer token from the token endpoint is required"})
        try:
            verified = verify_token(token.strip(), service_name(request))
        except InvalidToken as exc:
            raise _Unauthorized(None, {"reason": f"invalid token: {exc}"}) from None
        return (None, verified)

    def authenticate_header(self, request):
        return f'Bearer realm="{realm(request)}",service="{service_name(request)}"'


class RegistryView(APIView):
    """Access rules live here; subclasses ask for a repository and an action."""

    authentication_classes = [RegistryTokenAuthentication]
    permission_classes: list = []
    renderer_classes = [JSONRenderer]
    parser_classes: list = []
    # Registry clients do not send CSRF tokens; the API takes bearer tokens only.
    throttle_classes: list = []

    def initial(self, request, *args, **kwargs):
        # Query parameters (last, artifactType ...) reach database filters; PostgreSQL refuses
        # text with NUL in it, which would be a 500. Names in the path are checked by grammar.
        if any("\x00" in key + value for key, values in request.GET.lists() for value in values):
            raise errors.Unsupported({"reason": "query parameters must not contain NUL characters"})
        super().initial(request, *args, **kwargs)

    def options(self, request, *args, **kwargs):
        # The methods and nothing else: DRF's metadata answer is a template response that the
        # /v2/ fast path would have to render, and tells a registry client nothing it uses.
        response = HttpResponse(status=200)
        response["Allow"] = ", ".join(self.allowed_methods)
        return response

    def perform_content_negotiation(self, request, force=False):
        # Responses are built by hand with the media type each endpoint dictates.
        return (self.renderer_classes[0](), "application/json")

    def handle_exception(self, exc):
        if isinstance(exc, MethodNotAllowed):
            # Clients parse only the spec's error body, on a 405 as on any other error.
            exc = errors.MethodNotAllowed({"method": self.request.method})
        if isinstance(exc, errors.RegistryError):
            return error_response(self.request, exc, getattr(exc, "scope", None))
        if isinstance(exc, BACKEND_ERRORS) and not isinstance(exc, UnreadablePostError):  # not: the client
            logger.exception("%s %s failed on storage or the database", self.request.method, self.request.path)
            return error_response(self.request, errors.Unavailable({"error": type(exc).__name__}))
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        if not response.streaming and not response.has_header("Content-Length"):
            # CommonMiddleware would do this, but /v2/ skips the middleware stack.
            response["Content-Length"] = str(len(response.content))
        if request.method == "HEAD" and not response.streaming and response.content:
            # A HEAD answer carries the headers a GET would (Content-Length included) and no
            # body; the server would drop the bytes anyway, with a warning per response.
            response.content = b""
        return response

    # -- helpers -------------------------------------------------------------------------------

    @property
    def token(self) -> VerifiedToken | None:
        return self.request.auth

    def principal(self) -> Principal:
        from registry.permissions import ANONYMOUS

        return principal_for_token(self.token) if self.token is not None else ANONYMOUS

    def principal_key(self) -> str:
        return self.token.principal_key if self.token is not None else "anon"

    def allows(self, name: str, action: str) -> bool:
        return self.token is not None and self.token.allows("repository", name, action)

    def authorize(self, name: str, action: str, *, is_public: bool | None) -> None:
        """Raise 401 unless the caller may ``action`` on ``name`` (``is_public`` None: missing).

        A caller that is not authorized gets the same 401 whether the repository exists or not;
        NAME_UNKNOWN comes only after authorization succeeds. Public repositories may be pulled
        without a token at all.
        """
        if self.allows(name, action) or (action == "delete" and self.allows(name, "push")):
            # A repository access token (a build's job token among them) revoked after the
            # bearer token was issued must stop writes at once, not when the JWT expires: a
            # requeued build's old worker must not push (docs/BUILDS.md, "never pushed twice").
            if action == "pull" or access_token_live(self.token):
                return
        if action == "pull" and is_public:
            return
        # A push also reads (HEAD of blobs and manifests): ask for both, as Distribution does, so
        # clients that take the scope from the challenge get one token for the whole push.
        scope_actions = "pull,push" if action == "push" else action
        raise _Unauthorized(f"repository:{name}:{scope_actions}", {"name": name, "action": action})

    def repository_for(self, name: str, action: str) -> Repository:
        """Authorize ``action`` on repository ``name`` and return it (created on first push)."""
        repository = selectors.repository_by_name(name)
        self.authorize(name, action, is_public=repository.is_public if repository is not None else None)
        if repository is None:
            if action != "push":
                raise errors.NameUnknown({"name": name})
            repository = services.repository_get_or_create_for_push(
                full_name=name, principal=self.principal(), ip=client_ip(self.request)
            )
        if action != "pull" and repository.state == Repository.State.READ_ONLY:
            raise errors.Denied({"reason": "the repository is read-only"})
        return repository


def body_stream(request) -> tuple[object, int | None]:
    """The request body as a stream, and its length when the client declared one.

    Django reads ``Content-Length`` bytes only and treats a chunked body as empty, so a chunked
    body (Go clients stream PATCHes that way) is read from the WSGI input, which the server
    (gunicorn) de-chunks.
    """
    raw = getattr(request, "_request", request)
    if "chunked" in raw.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return raw.META["wsgi.input"], None
    try:
        length = int(raw.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise errors.SizeInvalid({"reason": "invalid Content-Length"}) from None
    if length < 0:
        raise errors.SizeInvalid({"reason": "invalid Content-Length"})
    return raw, length
