"""Who may act on an organization through /api/v1, decided once per request.

Quay's rules: organization admins (members of a team with the admin role) manage the
organization, its teams, robots and applications; members see it and its teams. Callers
outside the organization get 404 for what lives inside it, so they cannot probe for teams,
robots or applications; the organization itself is public, as in Quay.

Superusers act as admins of every organization when their credentials carry ``super:user``
(a session always does; a token only if granted), like Quay with SUPERUSERS_FULL_ACCESS.
"""

from dataclasses import dataclass

from accounts import scopes, selectors
from accounts.models import Namespace, Team, User
from quay_site.rest.auth import TokenGrant
from quay_site.rest.errors import ApiError, NotFound


class Forbidden(ApiError):
    """Quay's answer to a signed-in caller without the right: 403 ``insufficient_scope``."""

    error_type, status = "insufficient_scope", 403

    def __init__(self, detail: str = "Unauthorized"):
        super().__init__(detail)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def acts_as_superuser(request) -> bool:
    user = request.user
    if not (user and user.is_authenticated and user.is_superuser):
        return False
    if isinstance(request.auth, TokenGrant):
        return scopes.SUPERUSER in request.auth.scopes
    return True


def require_superuser(request) -> User:
    if not acts_as_superuser(request):
        raise Forbidden()
    return request.user


@dataclass(frozen=True)
class OrgAccess:
    organization: Namespace
    roles: frozenset[str]
    superuser: bool

    @property
    def is_admin(self) -> bool:
        return self.superuser or Team.Role.ADMIN in self.roles

    @property
    def is_member(self) -> bool:
        return self.superuser or bool(self.roles)


def org_access(request, orgname: str, *, need: str | None = None) -> OrgAccess:
    """Look up the organization and the caller's standing in it.

    ``need="member"``: outsiders get 404. ``need="admin"``: outsiders get 404, members 403.
    """
    organization = selectors.organization_by_name(name=orgname)
    if organization is None:
        raise NotFound()
    access = OrgAccess(
        organization=organization,
        roles=frozenset(selectors.organization_roles(user=request.user, organization=organization)),
        superuser=acts_as_superuser(request),
    )
    if need in ("member", "admin") and not access.is_member:
        raise NotFound()
    if need == "admin" and not access.is_admin:
        raise Forbidden()
    return access
