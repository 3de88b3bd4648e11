"""Who may see and change what in the web UI, with the registry's and the REST API's rules.

A repository the caller cannot read answers 404 to a signed-in user (an anonymous visitor is sent
to sign in first, whether or not the repository exists); one it can read but not change answers
403 with a message saying which role is missing. Superusers act as admins of every repository
and organization, as they do from a session on /api/v1.

Organizations are public by name (as in Quay); their inner pages answer 404 to outsiders and
403 to members who are not admins.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404

from accounts import selectors as account_selectors
from accounts.models import Namespace, Team
from registry import errors as registry_errors
from registry import names
from registry import selectors as registry_selectors
from registry.models import ROLE_RANK, Repository, Role
from registry.permissions import ANONYMOUS, Principal, can_create_in, repository_role


class SignInRequired(Exception):
    """The page needs a signed-in user; the view answers with a redirect to the sign-in page."""


class Forbidden(Exception):
    """The caller may see the object but not do this; the view answers 403 with ``message``."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def signed_in(request) -> bool:
    return request.user.is_authenticated


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def principal_of(request) -> Principal:
    if not signed_in(request):
        return ANONYMOUS
    return Principal(kind="robot" if request.user.is_robot else "user", user=request.user)


def is_superuser(request) -> bool:
    return signed_in(request) and request.user.is_superuser


@dataclass(frozen=True)
class RepositoryAccess:
    repository: Repository
    role: str

    def can(self, need: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[need]

    @property
    def can_write(self) -> bool:
        return self.can(Role.WRITE)

    @property
    def is_admin(self) -> bool:
        return self.can(Role.ADMIN)


ROLE_NEEDED_MESSAGES = {
    Role.WRITE: "You need write permission on {name} to do this.",
    Role.ADMIN: "Only administrators of {name} can do this.",
}


def repository_access(request, full_name: str, *, need: str = Role.READ) -> RepositoryAccess:
    try:
        names.split_repository_name(full_name)
    except registry_errors.RegistryError:
        raise Http404("No such repository") from None
    repository = registry_selectors.repository_by_name(full_name)
    role = None
    if repository is not None:
        role = Role.ADMIN if is_superuser(request) else repository_role(principal_of(request), repository)
    if repository is None or role is None:
        if not signed_in(request):
            raise SignInRequired()
        raise Http404("No such repository")
    access = RepositoryAccess(repository=repository, role=role)
    if not access.can(need):
        raise Forbidden(ROLE_NEEDED_MESSAGES[need].format(name=repository.full_name))
    return access


@dataclass(frozen=True)
class OrganizationAccess:
    organization: Namespace
    roles: frozenset[str]
    superuser: bool

    @property
    def is_admin(self) -> bool:
        return self.superuser or Team.Role.ADMIN in self.roles

    @property
    def is_member(self) -> bool:
        return self.superuser or bool(self.roles)

    @property
    def can_create(self) -> bool:
        return self.is_admin or Team.Role.CREATOR in self.roles


def organization_access(request, name: str, *, need: str | None = None) -> OrganizationAccess:
    """``need`` None: anyone (the organization is public by name); "member": outsiders get 404;
    "admin": outsiders get 404 and members 403."""
    organization = account_selectors.organization_by_name(name=name)
    if organization is None:
        raise Http404("No such organization")
    roles = account_selectors.organization_roles(user=request.user, organization=organization)
    access = OrganizationAccess(organization=organization, roles=frozenset(roles), superuser=is_superuser(request))
    if need in ("member", "admin") and not access.is_member:
        if not signed_in(request):
            raise SignInRequired()
        raise Http404("No such organization")
    if need == "admin" and not access.is_admin:
        raise Forbidden(f"Only administrators of the organization {organization.name} can do this.")
    return access


def may_create_in(request, namespace: Namespace) -> bool:
    return can_create_in(principal_of(request), namespace)
