"""Authentication and scope checks for /api/v1.

Two ways in, as in Quay: an OAuth bearer token carrying scopes, or a browser session (with
CSRF on writes) that carries every scope of its user.
"""

from dataclasses import dataclass

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, CSRFCheck, SessionAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from accounts import scopes as quay_scopes
from accounts import selectors as account_selectors
from quay_site.rest.errors import InsufficientScope


@dataclass(frozen=True)
class TokenGrant:
    """``request.auth`` for bearer-token requests: the scopes granted (implications expanded)."""

    scopes: frozenset[str]
    token_id: int


class OAuthTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).decode(errors="replace")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        row = account_selectors.oauth_token_by_value(token=token.strip())
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token")
        return row.user, TokenGrant(scopes=quay_scopes.expand(row.scope_set), token_id=row.pk)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class _HeaderTokenCsrfCheck(CSRFCheck):
    """Django's CSRF check without the HTTPS Referer requirement, for header-token requests.

    Quay's clients (its Ansible collection, scripts) send the token in ``X-CSRF-Token`` and no
    Referer or Origin, which Django refuses on HTTPS. A cross-site page cannot add that header
    without a CORS preflight this API never grants, so the token comparison (still done) is
    what protects these requests; form posts without the header keep the full check.
    """

    def _check_referer(self, request):
        return None


class CsrfSessionAuthentication(SessionAuthentication):
    """Django's session with CSRF enforced on unsafe methods."""

    def enforce_csrf(self, request):
        if settings.CSRF_HEADER_NAME not in request.META:
            return super().enforce_csrf(request)
        check = _HeaderTokenCsrfCheck(lambda request: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")


def permission_method(request) -> str:
    """The method whose rules apply: HEAD runs the GET handler (Django), so it needs what GET
    needs. Looked up as itself, a HEAD found no entry and passed as public (a token without the
    scope, even an anonymous caller)."""
    return "GET" if request.method == "HEAD" else request.method


class ScopePermission(BasePermission):
    """Each view names the scope each method needs in ``required_scopes``; None means public.

    Sessions hold every scope of their user; tokens only what they were granted.
    """

    def has_permission(self, request, view):
        required = view.required_scopes.get(permission_method(request), view.required_scopes.get("*"))
        if required is None:
            return True
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Requires authentication")
        if isinstance(request.auth, TokenGrant) and required not in request.auth.scopes:
            raise InsufficientScope(f"The token lacks the {required} scope")
        return True
