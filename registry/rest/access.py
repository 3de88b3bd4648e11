"""Who is calling and what they may do to a repository, for the /api/v1 views.

The roles are the registry's (registry.permissions), plus Quay's superuser full access: a
superuser acts as admin of every repository from a session, or from a token that carries the
``super:user`` scope. Visibility comes before permission: a repository the caller cannot read
answers 404 (401 to an anonymous caller), one it can read but not change answers 403.
"""

from __future__ import annotations

from django.core import signing
from rest_framework import exceptions

from accounts import scopes
from quay_site.rest.auth import ScopePermission, TokenGrant, permission_method
from quay_site.rest.errors import InsufficientScope, InvalidRequest, NotFound
from registry import errors as registry_errors
from registry import names, selectors
from registry.models import ROLE_RANK, Repository, Role
from registry.permissions import ANONYMOUS, Principal, repository_role

TRUE_VALUES = {"true", "1", "yes", "on", "t", "y"}


class ScopeOrAnonymousPermission(ScopePermission):
    """ScopePermission, except that the methods a view lists in ``anonymous_methods`` may also be
    called without authentication (public repositories are readable by anyone). A token must
    still carry the method's scope."""

    def has_permission(self, request, view):
        authenticated = request.user is not None and request.user.is_authenticated
        if not authenticated and permission_method(request) in getattr(view, "anonymous_methods", ()):
            return True
        return super().has_permission(request, view)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def is_authenticated(request) -> bool:
    return request.user is not None and request.user.is_authenticated


def principal_of(request) -> Principal:
    if not is_authenticated(request):
        return ANONYMOUS
    user = request.user
    return Principal(kind="robot" if user.is_robot else "user", user=user)


def superuser_access(request) -> bool:
    if not is_authenticated(request) or not request.user.is_superuser:
        return False
    if isinstance(request.auth, TokenGrant):
        return scopes.SUPERUSER in request.auth.scopes
    return True


def role_on(request, repository: Repository) -> str | None:
    if superuser_access(request):
        return Role.ADMIN
    return repository_role(principal_of(request), repository)


def hidden(request) -> Exception:
    """The error for something the caller may not see: 401 when anonymous, else 404."""
    if not is_authenticated(request):
        return exceptions.NotAuthenticated("Requires authentication")
    return NotFound()


def forbidden() -> Exception:
    return InsufficientScope("Unauthorized")


def repository_for(request, full_name: str, *, need: str) -> tuple[Repository, str]:
    """The repository named in the path and the caller's role on it, if at least ``need``."""
    try:
        names.split_repository_name(full_name)
    except registry_errors.RegistryError:
        raise hidden(request) from None
    repository = selectors.repository_by_name(full_name)
    role = role_on(request, repository) if repository is not None else None
    if repository is None or role is None:
        raise hidden(request)
    if ROLE_RANK[role] < ROLE_RANK[need]:
        raise forbidden()
    return repository, role


def flag(request, name: str, default: bool = False) -> bool:
    """A boolean query parameter the way Quay reads them (true/1/yes/on)."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in TRUE_VALUES


# Page tokens are opaque to clients and signed, so a client cannot forge a position in a
# listing it may not see; the salt keeps one listing's token from being replayed on another.
def page_token_dump(kind: str, position: dict) -> str:
    return signing.dumps(position, salt=f"api-page:{kind}", compress=True)


def page_token_load(request, kind: str) -> dict | None:
    token = request.query_params.get("next_page")
    if not token:
        return None
    try:
        position = signing.loads(token, salt=f"api-page:{kind}")
    except signing.BadSignature:
        raise InvalidRequest("Invalid next_page token") from None
    if not isinstance(position, dict):
        raise InvalidRequest("Invalid next_page token")
    return position
